"""The local cluster state file, names, the `current` pointer, and how the CLI finds a cluster;
the cluster's PKI layout, its user's kubeconfig and its default namespace's Pod Security level."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from apimachinery import certs, errors, kubeconfig
from apimachinery.client import Client
from cli import config
from cli.cmd_pki import NodeSpec, PkiOptions, init_pki
from localcluster import access, clusterstate, pki, prereqs
from localcluster.clusterstate import ClusterState, ClusterStateError, ProcessRecord
from localcluster.pki import PkiLayout
from protos import core_pb2


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), clusterstate.ENV_ROOT: str(tmp_path / "c"), **extra}


def make(tmp_path: Path, name: str) -> ClusterState:
    state = ClusterState(name=name, nodes=["node1", "node2"], root=str(tmp_path / "c"))
    state.server = "10.201.0.11:6443"
    state.processes["apiserver"] = ProcessRecord(
        pid=os.getpid(),
        start_time=clusterstate.process_start_time(os.getpid()),
        argv=["tinykube", "apiserver"],
        log="/x/apiserver.log",
        node="node1",
    )
    state.save()
    return state


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    state = make(tmp_path, "demo")
    loaded = clusterstate.load("demo", env_for(tmp_path))
    assert loaded.nodes == ["node1", "node2"]
    assert loaded.processes["apiserver"].argv == ["tinykube", "apiserver"]
    assert loaded.client_address == f"unix:{tmp_path}/c/demo/api.sock"
    assert loaded.prefix == "tk-demo"
    assert state.path.read_text().startswith("{")


def test_a_process_is_ours_only_with_its_start_time(tmp_path: Path) -> None:
    record = make(tmp_path, "demo").processes["apiserver"]
    assert record.alive()
    record.start_time += 1  # the pid was reused by someone else
    assert not record.alive()
    assert not ProcessRecord(pid=0, start_time=0, argv=[], log="").alive()


@pytest.mark.parametrize("bad", ["", "Demo", "a_b", "-a", "a-", "x" * 21, "a/b"])
def test_bad_cluster_names_are_refused_by_name(bad: str) -> None:
    with pytest.raises(ClusterStateError, match="cluster name"):
        clusterstate.validate_name(bad)


def test_namespace_ownership_is_exact() -> None:
    assert clusterstate.owns_namespace("tk-a", "tk-a-node1")
    assert clusterstate.owns_namespace("tk-a", "tk-a-ul")
    assert not clusterstate.owns_namespace("tk-a", "tk-a-2-node1")
    assert not clusterstate.owns_namespace("tk-a", "tk-a-node1x")


def test_missing_and_malformed_state_files_name_the_file(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    with pytest.raises(ClusterStateError, match="no cluster named 'nope'"):
        clusterstate.load("nope", env)
    bad = tmp_path / "c" / "bad" / "state.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[1, 2]")
    with pytest.raises(ClusterStateError, match="not a JSON object"):
        clusterstate.load("bad", env)
    bad.write_text('{"name": "bad"}')
    with pytest.raises(ClusterStateError, match="malformed"):
        clusterstate.load("bad", env)


def test_current_cluster_follows_up_and_down(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert clusterstate.current(env) == ""
    make(tmp_path, "one")
    make(tmp_path, "two")
    clusterstate.set_current("one", env)
    assert clusterstate.current(env) == "one"
    assert clusterstate.list_clusters(env) == ["one", "two"]
    clusterstate.clear_current("two", env)  # not the current one: no change
    assert clusterstate.current(env) == "one"
    clusterstate.clear_current("one", env)
    assert clusterstate.current(env) == ""


def test_cli_finds_the_most_recent_cluster(tmp_path: Path) -> None:
    make(tmp_path, "demo")
    env = env_for(tmp_path)
    assert config.resolve_server(None, env) == config.DEFAULT_SERVER
    clusterstate.set_current("demo", env)
    sock = f"unix:{tmp_path}/c/demo/api.sock"
    assert config.resolve_server(None, env) == sock
    # a config file in HOME comes after the running cluster; an explicit one before it
    home = tmp_path / "home" / ".tinykube"
    home.mkdir(parents=True)
    (home / "config").write_text("server: 10.0.0.1:6443\n")
    assert config.resolve_server(None, env) == sock
    named = tmp_path / "named.yaml"
    named.write_text("server: 10.0.0.2:6443\n")
    assert config.resolve_server(None, {**env, "TINYKUBE_CONFIG": str(named)}) == "10.0.0.2:6443"
    # the flag and $TINYKUBE_SERVER still win
    assert config.resolve_server("10.0.0.3:6443", env) == "10.0.0.3:6443"
    assert config.resolve_server(None, {**env, "TINYKUBE_SERVER": "10.0.0.4"}) == "10.0.0.4:6443"


def test_cluster_chosen_by_flag_or_environment(tmp_path: Path) -> None:
    make(tmp_path, "one")
    make(tmp_path, "two")
    env = env_for(tmp_path)
    clusterstate.set_current("one", env)
    two = f"unix:{tmp_path}/c/two/api.sock"
    assert config.resolve_server(None, env, cluster="two") == two
    assert config.resolve_server(None, {**env, "TINYKUBE_CLUSTER": "two"}) == two
    with pytest.raises(config.ConfigError, match="no cluster named 'three'"):
        config.resolve_server(None, env, cluster="three")


def test_prerequisites_name_the_debian_package() -> None:
    problems = prereqs.check(
        which=lambda b: None if b in ("nft", "docker-registry") else "/usr/bin/" + b,
        exists=lambda p: p != "/bin/busybox",
        euid=lambda: 1000,
    )
    text = "\n".join(problems)
    assert "run it with sudo" in text
    assert "nft not found: apt-get install nftables" in text
    assert "docker-registry not found: apt-get install docker-registry" in text
    assert "/bin/busybox not found: apt-get install busybox-static" in text
    assert prereqs.missing_packages(problems) == ["busybox-static", "docker-registry", "nftables"]
    everything = prereqs.check(
        which=lambda b: "/x", exists=lambda p: True, euid=lambda: 0, kernel=lambda: []
    )
    assert everything == []
    docker = prereqs.check("docker", which=lambda b: None if b == "dockerd" else "/x",
                           exists=lambda p: True, euid=lambda: 0)  # fmt: skip
    assert docker == ["dockerd not found: apt-get install docker.io"]
    no_vxlan = prereqs.check(
        which=lambda b: "/x", exists=lambda p: True, euid=lambda: 0,
        kernel=lambda: ["the kernel cannot make a VXLAN device (module vxlan): ..."],
    )  # fmt: skip
    assert no_vxlan and "VXLAN" in no_vxlan[0]


def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from click.testing import CliRunner

    from cli.main import cli

    monkeypatch.setenv(clusterstate.ENV_ROOT, str(tmp_path / "c"))
    for name in ("TINYKUBE_SERVER", "TINYKUBE_CLUSTER", "TINYKUBE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner().invoke(cli, list(args))


def test_status_and_node_shell_name_a_missing_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_cli(tmp_path, monkeypatch, "status", "--name", "nope")
    assert out.exit_code == 1
    assert "no cluster named 'nope'" in out.output
    out = run_cli(tmp_path, monkeypatch, "--cluster", "nope", "node-shell", "node1", "--", "true")
    assert out.exit_code == 1 and "no cluster named 'nope'" in out.output


def test_node_shell_names_the_nodes_it_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, "demo")
    out = run_cli(tmp_path, monkeypatch, "node-shell", "--name", "demo", "node9", "--", "true")
    assert out.exit_code == 1
    assert "has no node 'node9' (nodes: node1, node2)" in out.output


def test_up_refuses_a_bad_name_before_doing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_cli(tmp_path, monkeypatch, "up", "--name", "Bad_Name")
    assert out.exit_code == 1
    assert "cluster name 'Bad_Name'" in out.output
    assert not (tmp_path / "c").exists()


def test_get_uses_the_named_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_cli(tmp_path, monkeypatch, "--cluster", "ghost", "get", "nodes")
    assert out.exit_code == 1
    assert "no cluster named 'ghost'" in out.output


# ---- security: the PKI's layout, the user's kubeconfig, Pod Security ------------------------


def cluster_pki(directory: Path) -> PkiLayout:
    """What `tinykube up` makes: node1's address first, both nodes' kubelets."""
    node1, node2 = ipaddress.ip_address("10.201.0.11"), ipaddress.ip_address("10.201.0.12")
    options = PkiOptions(
        directory,
        addresses=(node1,),
        nodes=(NodeSpec("node1", (node1,)), NodeSpec("node2", (node2,))),
    )
    init_pki(options, echo=lambda _: None)
    return PkiLayout(str(directory))


def test_pki_layout_names_what_pki_init_writes(tmp_path: Path) -> None:
    layout = cluster_pki(tmp_path / "demo")
    kubelet = pki.kubelet_args(layout, "node2", cert_dir="/x")
    apiserver = pki.apiserver_args(layout)
    flags = dict(zip(kubelet[::2], kubelet[1::2], strict=True))
    files = [v for k, v in flags.items() if k != "--cert-dir"] + apiserver[1::2]
    files += [layout.admin_conf, layout.kubeconfig("scheduler")]
    for path in files:
        assert Path(path).is_file(), path
    assert stat.S_IMODE(os.stat(layout.ca_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(layout.ca_key).parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(layout.kubelet_conf("node2")).st_mode) == 0o600
    node2 = kubeconfig.load(flags["--kubeconfig"])
    assert node2.target == "10.201.0.11:6443" and node2.cert_pem is not None
    assert certs.identity(certs.load_cert_pem(node2.cert_pem)).user == "system:node:node2"
    serving = certs.read_cert(flags["--tls-cert-file"])
    assert ipaddress.ip_address("10.201.0.12") in certs.subject_alt_names(serving)[0]


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> access.User:
    """The user who ran `sudo tinykube up`, with a home under tmp_path."""
    who = access.User("someone", os.getuid(), os.getgid(), tmp_path / "home")
    monkeypatch.setattr(access.User, "invoking", classmethod(lambda cls: who))
    return who


def test_user_kubeconfig_is_the_admin_over_tls(tmp_path: Path, user: access.User) -> None:
    layout = cluster_pki(tmp_path / "demo")
    said: list[str] = []
    path = access.write_user_kubeconfig("demo", layout, "10.201.0.11:6443", said.append)
    assert path == user.config and not said
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert access.written_by_up(path) == "demo"
    # the CLI reads it as a kubeconfig: the admin, TLS to node1's mTLS port
    resolved = config.resolve(None, {"HOME": str(user.home), clusterstate.ENV_ROOT: "/none"})
    assert (resolved.target, resolved.tls) == ("10.201.0.11:6443", True)
    assert resolved.cert_pem is not None
    admin = certs.identity(certs.load_cert_pem(resolved.cert_pem))
    assert (admin.user, admin.groups) == ("kubernetes-admin", ("system:masters",))


def test_user_kubeconfig_replaces_only_what_up_wrote(tmp_path: Path, user: access.User) -> None:
    layout = cluster_pki(tmp_path / "demo")
    said: list[str] = []
    access.write_user_kubeconfig("demo", layout, "10.201.0.11:6443", said.append)
    access.write_user_kubeconfig("other", layout, "10.201.0.11:6443", said.append)
    assert access.written_by_up(user.config) == "other"  # a later cluster's up takes it over
    assert access.remove_user_kubeconfig("demo") is None  # down of demo: not demo's any more
    assert access.remove_user_kubeconfig("other") == user.config
    assert not user.config.exists()
    # a file of the user's own is never written nor removed
    user.config.write_text("server: 10.0.0.1:6443\n")
    assert access.write_user_kubeconfig("demo", layout, "10.201.0.11:6443", said.append) is None
    assert "is not one tinykube up wrote: left as it is" in said[-1]
    assert access.remove_user_kubeconfig("demo") is None
    assert user.config.read_text() == "server: 10.0.0.1:6443\n"


def test_socket_group_is_the_sudo_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_GID", "1000")
    assert access.socket_group() == "1000"
    monkeypatch.setenv("SUDO_GID", "0")
    assert access.socket_group() == ""
    monkeypatch.delenv("SUDO_GID")
    assert access.socket_group() == ""


async def test_default_namespace_enforces_baseline(client: Client) -> None:
    await access.enforce_baseline(client)
    await access.enforce_baseline(client)  # again: unchanged, no error (a repaired cluster)
    namespace = await client.get(core_pb2.Namespace, "default")
    assert namespace.metadata.labels[access.ENFORCE_LABEL] == "baseline"
    privileged = core_pb2.Pod()
    privileged.metadata.name = "root-of-the-node"
    container = privileged.spec.containers.add(name="c", image="busybox")
    container.security_context.privileged = True
    with pytest.raises(errors.StatusError, match='violates PodSecurity "baseline:latest"'):
        await client.create(privileged)
