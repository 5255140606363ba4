"""`tinykube config ...`: reading and editing the kubeconfig file, and a switch of context that
really changes which API server (a real one, tests/unit/cli_apiserver) the next command reaches."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from apimachinery import kubeconfig
from cli.main import cli
from protos import core_pb2
from tests.unit.cli_apiserver import POD, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(60)
MARKER = "# written by tinykube up for cluster demo\n"
CLEAN_ENV = {"TINYKUBE_SERVER": None, "KUBECONFIG": None, "TINYKUBE_CONFIG": None}


def write_config(path: Path, socket: str) -> Path:
    doc = kubeconfig.new_config(
        server="https://10.0.0.1:6443", ca_pem=b"CA PEM", user="admin", cert_pem=b"C", key_pem=b"K"
    )
    doc["users"].append({"name": "bot", "user": {"token": "s3cret"}})
    doc["clusters"].append({"name": "local", "cluster": {"server": socket}})
    doc["clusters"].append({"name": "dead", "cluster": {"server": "unix:/nonexistent/api.sock"}})
    doc["contexts"] = [
        {"name": "good", "context": {"cluster": "local", "namespace": "team"}},
        {"name": "broken", "context": {"cluster": "dead"}},
        {"name": "admin@kubernetes", "context": {"cluster": "kubernetes", "user": "admin"}},
    ]
    doc["current-context"] = "broken"
    path.write_text(MARKER + kubeconfig.dumps(doc))
    return path


def tk(config: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--kubeconfig", str(config), *args], env=env or CLEAN_ENV)


def test_use_context_switches_the_server(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "kubeconfig", apiserver.address)
    apiserver.call(lambda client: client.create(_namespace("team")))
    apiserver.create_yaml(
        POD.format(name="c1").replace("  name: c1\n", "  name: c1\n  namespace: team\n")
    )
    down = tk(config, "get", "pods")
    assert down.exit_code == 1 and "cannot reach the API server" in down.stderr
    switched = tk(config, "config", "use-context", "good")
    assert (switched.exit_code, switched.stdout) == (0, 'Switched to context "good".\n')
    up = tk(config, "get", "pods", "-o", "name")
    assert (up.exit_code, up.stdout) == (0, "pod/c1\n"), up.output  # the context's namespace
    assert config.read_text().startswith(MARKER)
    assert config.stat().st_mode & 0o777 == 0o600
    assert tk(config, "config", "current-context").stdout == "good\n"


def _namespace(name: str) -> core_pb2.Namespace:
    ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = name
    return ns


def test_view_redacts_unless_raw(tmp_path: Path) -> None:
    config = write_config(tmp_path / "kc", "unix:/x.sock")
    shown = yaml.safe_load(tk(config, "config", "view").stdout)
    assert shown["clusters"][0]["cluster"]["certificate-authority-data"] == "DATA+OMITTED"
    admin = shown["users"][0]["user"]
    assert admin == {"client-certificate-data": "DATA+OMITTED", "client-key-data": "REDACTED"}
    assert shown["users"][1]["user"] == {"token": "REDACTED"}
    text = tk(config, "config", "view").stdout
    assert "s3cret" not in text and base64.b64encode(b"K").decode() not in text
    raw = yaml.safe_load(tk(config, "config", "view", "--raw").stdout)
    assert raw["users"][1]["user"]["token"] == "s3cret"
    assert list(shown) == sorted(shown)  # kubectl prints keys in order


def test_view_minify_and_flatten(tmp_path: Path) -> None:
    config = write_config(tmp_path / "kc", "unix:/x.sock")
    assert tk(config, "config", "use-context", "admin@kubernetes").exit_code == 0
    mini = yaml.safe_load(tk(config, "config", "view", "--minify").stdout)
    assert [c["name"] for c in mini["contexts"]] == ["admin@kubernetes"]
    assert [c["name"] for c in mini["clusters"]] == ["kubernetes"]
    assert [u["name"] for u in mini["users"]] == ["admin"]
    (tmp_path / "ca.crt").write_bytes(b"FILE CA")
    doc = yaml.safe_load(config.read_text())
    del doc["clusters"][0]["cluster"]["certificate-authority-data"]
    doc["clusters"][0]["cluster"]["certificate-authority"] = "ca.crt"
    config.write_text(yaml.safe_dump(doc))
    flat = yaml.safe_load(tk(config, "config", "view", "--flatten", "--raw", "--minify").stdout)
    assert (
        flat["clusters"][0]["cluster"]["certificate-authority-data"]
        == base64.b64encode(b"FILE CA").decode()
    )


def test_get_contexts_and_set_context(tmp_path: Path) -> None:
    config = write_config(tmp_path / "kc", "unix:/x.sock")
    table = tk(config, "config", "get-contexts").stdout.splitlines()
    assert table[0].split() == ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
    assert table[1].split() == ["admin@kubernetes", "kubernetes", "admin"]
    assert table[2].split() == ["*", "broken", "dead"]
    assert table[3].split() == ["good", "local", "team"]
    assert tk(config, "config", "get-contexts", "-o", "name").stdout.split() == [
        "admin@kubernetes",
        "broken",
        "good",
    ]
    changed = tk(config, "config", "set-context", "--current", "--namespace", "dev")
    assert changed.stdout == 'Context "broken" modified.\n'
    made = tk(config, "config", "set-context", "new", "--cluster", "local")
    assert made.stdout == 'Context "new" created.\n'
    one = tk(config, "config", "get-contexts", "broken").stdout.splitlines()[1].split()
    assert one == ["*", "broken", "dead", "dev"]


def test_kubeconfig_variable_picks_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "kc", "unix:/x.sock")
    env = {**CLEAN_ENV, "KUBECONFIG": f"{config}:{tmp_path}/other"}
    result = CliRunner().invoke(cli, ["config", "current-context"], env=env)
    assert (result.exit_code, result.stdout) == (0, "broken\n")


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (None, ("use-context", "nope"), 'error: no context exists with the name: "nope"\n'),
        (None, ("get-contexts", "nope"), "error: context nope not found\n"),
        ("", ("current-context",), "error: current-context is not set\n"),
        ("", ("view", "--minify"), "error: current-context must exist in order to minify\n"),
        ("server: 10.0.0.1:6443\n", ("view",), "is not a kubeconfig (it names only a server)\n"),
        ("clusters: [", ("view",), "not valid YAML"),
        ("clusters: 3\n", ("get-contexts",), "clusters must be a list of named entries"),
        (None, ("set-context", "--namespace", "x"), "you must specify a context name or --current"),
    ],
)
def test_config_bad_input(
    tmp_path: Path, text: str | None, args: tuple[str, ...], message: str
) -> None:
    config = tmp_path / "kc"
    if text is None:
        write_config(config, "unix:/x.sock")
    else:
        config.write_text(text)
    before = config.read_text()
    result = tk(config, "config", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    no_traceback(result)
    assert config.read_text() == before


def test_missing_file_views_as_empty(tmp_path: Path) -> None:
    result = tk(tmp_path / "absent", "config", "view")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == {
        "apiVersion": "v1",
        "clusters": None,
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": None,
    }
