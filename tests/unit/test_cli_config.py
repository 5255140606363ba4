"""Server resolution: flag > --kubeconfig > $TINYKUBE_SERVER > $KUBECONFIG > config file >
default; kubeconfig files and the older `server:` file; the CLI over TLS with a kubeconfig."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from apimachinery import kubeconfig
from apiserver.listeners import ServingOptions
from apiserver.server import APIServer
from apiserver.storage import open_storage
from cli import config, context
from cli.cmd_pki import PkiOptions, init_pki
from cli.main import cli
from localcluster.processes import free_port


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_when_nothing_is_configured(tmp_path: Path) -> None:
    assert config.resolve_server(None, {"HOME": str(tmp_path)}) == "127.0.0.1:6443"


def test_home_config_file(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "server: 192.168.56.10:6443\n")
    assert config.resolve_server(None, {"HOME": str(tmp_path)}) == "192.168.56.10:6443"


def test_explicit_config_file_beats_home(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "server: 10.0.0.1:6443\n")
    other = write(tmp_path / "other.yaml", "server: 10.0.0.2:7443\n")
    env = {"HOME": str(tmp_path), "TINYKUBE_CONFIG": str(other)}
    assert config.resolve_server(None, env) == "10.0.0.2:7443"


def test_env_beats_file_and_flag_beats_env(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "server: 10.0.0.1:6443\n")
    env = {"HOME": str(tmp_path), "TINYKUBE_SERVER": "10.0.0.3:6443"}
    assert config.resolve_server(None, env) == "10.0.0.3:6443"
    assert config.resolve_server("10.0.0.4:6443", env) == "10.0.0.4:6443"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("https://10.0.0.1:6443/", "10.0.0.1:6443"),
        ("http://node1:7000", "node1:7000"),
        ("node1", "node1:6443"),
        ("[::1]", "[::1]:6443"),
        ("[::1]:7443", "[::1]:7443"),
        (" 127.0.0.1:6443 ", "127.0.0.1:6443"),
    ],
)
def test_normalize_server(raw: str, want: str) -> None:
    assert config.normalize_server(raw) == want


def test_empty_config_file_falls_back_to_default(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "")
    assert config.resolve_server(None, {"HOME": str(tmp_path)}) == config.DEFAULT_SERVER


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "must be a YAML mapping"),
        ("server: 6443\n", "'server' must be a string"),
        ("server: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_file_is_an_error_naming_it(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / ".tinykube" / "config", text)
    with pytest.raises(config.ConfigError) as info:
        config.resolve_server(None, {"HOME": str(tmp_path)})
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "TINYKUBE_CONFIG": str(tmp_path / "nope")}
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.resolve_server(None, env)
    # ... but the flag does not need the file at all
    assert config.resolve_server("10.0.0.9:6443", env) == "10.0.0.9:6443"


# ---- kubeconfig files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tinykube pki init`'s files, the kubeconfigs' server on a free loopback port."""
    directory = tmp_path_factory.mktemp("pki")
    init_pki(PkiOptions(directory, port=free_port()), echo=lambda _: None)
    return directory


def test_home_kubeconfig_gives_tls_and_the_admin(tmp_path: Path, pki: Path) -> None:
    write(tmp_path / ".tinykube" / "config", (pki / "admin.conf").read_text())
    resolved = config.resolve(None, {"HOME": str(tmp_path)})
    assert resolved.tls and resolved.cert_pem and resolved.ca_pem
    assert resolved.target == kubeconfig.load(pki / "admin.conf").target
    assert resolved.target.startswith("127.0.0.1:")


def test_kubeconfig_flag_and_environment_precedence(tmp_path: Path, pki: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "server: 10.0.0.1:6443\n")
    admin, scheduler = str(pki / "admin.conf"), str(pki / "scheduler.conf")
    env = {"HOME": str(tmp_path), "KUBECONFIG": f"{scheduler}:{admin}"}
    scheduler_cert = kubeconfig.load(scheduler).cert_pem
    # $KUBECONFIG: its first file, before the home file
    assert config.resolve(None, env).cert_pem == scheduler_cert
    # --kubeconfig before $KUBECONFIG and $TINYKUBE_SERVER
    flagged = config.resolve(None, {**env, "TINYKUBE_SERVER": "10.0.0.5"}, kubeconfig_flag=admin)
    assert flagged.cert_pem == kubeconfig.load(admin).cert_pem
    # $TINYKUBE_SERVER before $KUBECONFIG (an address per shell), the flag before everything
    assert config.resolve(None, {**env, "TINYKUBE_SERVER": "10.0.0.5"}).target == "10.0.0.5:6443"
    assert config.resolve("10.0.0.6:7443", env).tls is False
    # --server with --kubeconfig: that file's credentials at this address (kubectl's --server)
    moved = config.resolve("10.0.0.7:7443", env, kubeconfig_flag=admin)
    assert (moved.target, moved.tls, moved.cert_pem) == ("10.0.0.7:7443", True, flagged.cert_pem)
    # an empty first entry is skipped, as kubectl skips it
    assert config.resolve(None, {**env, "KUBECONFIG": f":{admin}"}).cert_pem == flagged.cert_pem


def test_named_kubeconfig_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "gone.conf")}
    with pytest.raises(config.ConfigError, match=r"gone.conf \(from \$KUBECONFIG\) does not"):
        config.resolve(None, env)
    with pytest.raises(config.ConfigError, match=r"nope.conf \(from --kubeconfig\) does not"):
        config.resolve(None, {"HOME": str(tmp_path)}, kubeconfig_flag=str(tmp_path / "nope.conf"))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda t: t.replace("kind: Config", "kind: Pod"), 'kind: must be "Config", not "Pod"'),
        (
            lambda t: t.replace("client-key-data: ", "client-key-data: a-"),
            "users[0].user.client-key-data: not valid base64",
        ),
        (
            lambda t: t.replace("current-context: ", "current-context: x"),
            'context "xkubernetes-admin@kubernetes" not found',
        ),
    ],
)
def test_bad_kubeconfig_names_the_file_and_the_field(
    tmp_path: Path, pki: Path, mutate: object, fragment: str
) -> None:
    assert callable(mutate)
    path = write(tmp_path / ".tinykube" / "config", mutate((pki / "admin.conf").read_text()))
    with pytest.raises(config.ConfigError) as info:
        config.resolve(None, {"HOME": str(tmp_path)})
    assert f"kubeconfig {path}: " in str(info.value)
    assert fragment in str(info.value)


def test_context_namespace_is_the_default_namespace(tmp_path: Path, pki: Path) -> None:
    text = (pki / "admin.conf").read_text()
    text = text.replace("user: kubernetes-admin\n", "user: kubernetes-admin\n    namespace: web\n")
    path = write(tmp_path / "ns.conf", text)
    opts = context.resolve_options(None, None, None, str(path))
    assert (opts.namespace, opts.namespace_explicit, opts.secure) == ("web", False, True)
    opts = context.resolve_options(None, "other", None, str(path))
    assert (opts.namespace, opts.namespace_explicit) == ("other", True)
    assert context.effective(opts, "third").client_config is opts.client_config


# ---- the CLI against a TLS-only API server -------------------------------------------------


class ServerThread:
    """An APIServer as `tinykube apiserver` serves it (mTLS on TCP), on a loop of its own."""

    def __init__(self, pki: Path, data: Path) -> None:
        self.pki, self.data = pki, data
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: APIServer | None = None

    def run(self, coro: object) -> None:
        assert asyncio.iscoroutine(coro)
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    async def start(self) -> None:
        tls = self.pki / "pki"
        serving = ServingOptions(
            listen=(),
            tls_cert_file=str(tls / "apiserver.crt"),
            tls_private_key_file=str(tls / "apiserver.key"),
            client_ca_file=str(tls / "ca.crt"),
        )
        address = kubeconfig.load(self.pki / "admin.conf").target
        storage = await open_storage("sqlite", str(self.data))
        self.server = APIServer(storage, address, serving=serving)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=0.1)


@pytest.fixture(scope="module")
def tls_server(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = ServerThread(pki, tmp_path_factory.mktemp("data"))
    srv.thread.start()
    srv.run(srv.start())
    try:
        yield kubeconfig.load(pki / "admin.conf").target
    finally:
        srv.run(srv.stop())
        srv.loop.call_soon_threadsafe(srv.loop.stop)
        srv.thread.join(5)


def test_cli_with_a_kubeconfig_reaches_the_tls_server(
    tls_server: str, pki: Path, tmp_path: Path
) -> None:
    env = {"HOME": str(tmp_path), "TINYKUBE_CLUSTERS_DIR": str(tmp_path / "none")}
    admin = str(pki / "admin.conf")
    created = CliRunner().invoke(
        cli, ["--kubeconfig", admin, "create", "namespace", "tls"], env=env
    )
    assert created.exit_code == 0, created.output
    listed = CliRunner().invoke(cli, ["get", "namespaces"], env={**env, "KUBECONFIG": admin})
    assert listed.exit_code == 0, listed.output
    assert "tls " in listed.output
    # the scheduler's identity is known but may not list namespaces: RBAC's sentence
    scheduler = str(pki / "scheduler.conf")
    denied = CliRunner().invoke(cli, ["--kubeconfig", scheduler, "get", "ns"], env=env)
    assert denied.exit_code == 1
    assert 'User "system:kube-scheduler" cannot list resource "namespaces"' in denied.output


def test_cli_without_credentials_is_told_to_use_a_kubeconfig(
    tls_server: str, tmp_path: Path
) -> None:
    env = {"HOME": str(tmp_path), "TINYKUBE_CLUSTERS_DIR": str(tmp_path / "none")}
    result = CliRunner().invoke(cli, ["--server", tls_server, "get", "namespaces"], env=env)
    assert result.exit_code == 1
    assert f"error: cannot reach the API server at {tls_server}" in result.output
    assert context.TLS_HINT in result.output
