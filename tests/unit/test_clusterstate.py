"""The local cluster state file, names, the `current` pointer, and how the CLI finds a cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cli import config
from localcluster import clusterstate, prereqs
from localcluster.clusterstate import ClusterState, ClusterStateError, ProcessRecord


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
