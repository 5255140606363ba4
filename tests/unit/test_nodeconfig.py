"""localcluster.nodeconfig and `tinykube node render-config`: what a node's daemons get."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from localcluster import nodeconfig
from localcluster.containerd import ContainerdConfig
from localcluster.nodeconfig import NodeConfig, NodeConfigError, NodePaths

NODE1 = NodeConfig(
    node_name="node1",
    node_ip="192.168.56.11",
    server="192.168.56.11:6443",
    control_plane=True,
)
NODE2 = NodeConfig(node_name="node2", node_ip="192.168.56.12", server="192.168.56.11:6443")


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_vm_containerd_config_has_what_tinykube_needs() -> None:
    files = nodeconfig.render_all(NODE2)
    toml = files["/etc/containerd/config.toml"]
    assert "restrict_oom_score_adj = true" in toml
    assert 'bin_dir = "/opt/cni/bin"' in toml
    assert 'conf_dir = "/etc/cni/net.d"' in toml
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in toml
    assert 'address = "/run/containerd/containerd.sock"' in toml
    assert 'root = "/var/lib/containerd"' in toml
    assert 'state = "/run/containerd"' in toml
    assert 'Root = "/run/containerd/runc"' in toml
    assert "config_path" not in toml  # no mirror: the VMs pull from the internet
    assert not any("hosts.toml" in path for path in files)


def test_mirror_adds_registry_config_path_and_hosts_tree() -> None:
    cfg = NodeConfig(node_name="node1", node_ip="10.201.0.11", registry_mirror="127.0.0.1:5000")
    files = nodeconfig.render_all(cfg)
    assert 'config_path = "/etc/containerd/certs.d"' in files["/etc/containerd/config.toml"]
    docker_io = files["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert 'server = "https://registry-1.docker.io"' in docker_io
    assert '[host."http://127.0.0.1:5000"]' in docker_io
    assert 'capabilities = ["pull", "resolve"]' in docker_io
    assert "/etc/containerd/certs.d/registry.k8s.io/hosts.toml" in files
    assert set(nodeconfig.render_registry_hosts(cfg)) == {
        "docker.io/hosts.toml",
        "registry.k8s.io/hosts.toml",
    }


def test_kubelet_args_carry_the_node_ip_and_run_the_network_agent() -> None:
    kubelet = nodeconfig.kubelet_args(NODE2)
    assert _value(kubelet, "--node-name") == "node2"
    assert _value(kubelet, "--node-ip") == "192.168.56.12"
    assert _value(kubelet, "--runtime") == "containerd"
    assert _value(kubelet, "--runtime-endpoint") == "unix:///run/containerd/containerd.sock"
    assert _value(kubelet, "--cni-conf-dir") == "/etc/cni/net.d"
    assert _value(kubelet, "--cni-bin-dir") == "/opt/cni/bin"
    assert _value(kubelet, "--pod-infra-container-image") == "registry.k8s.io/pause:3.9"
    # the network agent, in the kubelet's process: its own flags ride along
    assert "--network-agent" in kubelet
    assert _value(kubelet, "--cni-data-dir") == "/var/lib/tinykube/cni"
    assert "--iface" not in kubelet and "--no-masquerade" not in kubelet
    assert _value(kubelet, "--cluster-dns") == "169.254.20.10"  # on by default: the agent serves it
    quiet = replace(NODE2, cluster_dns=False)
    assert "--cluster-dns" not in nodeconfig.kubelet_args(quiet)
    files = nodeconfig.render_all(NODE2)
    assert files["/etc/tinykube/kubelet.env"] == (
        "TINYKUBE_KUBELET_ARGS=" + " ".join(kubelet) + "\n"
    )
    assert not [f for f in files if "netplugin" in f]  # no unit of its own
    # the CLI's config is a kubeconfig with credentials now, not a rendered address
    assert "/etc/tinykube/config" not in files


def test_kubelet_is_its_node_over_tls() -> None:
    """Its identity from pki init's kubeconfig (which names the server: no --server), its
    rotated certificates under its root dir, and its own server mutual TLS."""
    kubelet = nodeconfig.kubelet_args(NODE2)
    assert "--server" not in kubelet and "--bootstrap-kubeconfig" not in kubelet
    assert _value(kubelet, "--kubeconfig") == "/etc/tinykube/kubelet-node2.conf"
    assert _value(kubelet, "--cert-dir") == "/var/lib/kubelet/pki"
    assert _value(kubelet, "--tls-cert-file") == "/etc/tinykube/pki/kubelet-node2.crt"
    assert _value(kubelet, "--tls-private-key-file") == "/etc/tinykube/pki/kubelet-node2.key"
    assert _value(kubelet, "--client-ca-file") == "/etc/tinykube/pki/ca.crt"
    # joined by bootstrap token: the kubeconfig the kubelet writes, from tinykube join's
    joined = nodeconfig.kubelet_args(replace(NODE2, tls_bootstrap=True))
    assert _value(joined, "--kubeconfig") == "/etc/tinykube/kubelet.conf"
    assert _value(joined, "--bootstrap-kubeconfig") == "/etc/tinykube/bootstrap-kubelet.conf"
    assert _value(joined, "--tls-cert-file") == "/etc/tinykube/pki/kubelet-node2.crt"
    # a local cluster's nodes share the cluster directory's PKI
    local = replace(NODE2, pki_dir="/var/lib/tinykube/clusters/demo")
    assert _value(nodeconfig.kubelet_args(local), "--kubeconfig") == (
        "/var/lib/tinykube/clusters/demo/kubelet-node2.conf"
    )


def test_network_agent_iface_and_masquerade() -> None:
    cfg = NodeConfig(
        node_name="node1",
        node_ip="10.201.0.11",
        iface="eth1",
        masquerade=False,
        paths=NodePaths.under("/srv/n1"),
    )
    net = nodeconfig.network_agent_args(cfg)
    assert net[0] == "--network-agent"
    assert _value(net, "--iface") == "eth1"
    assert "--no-masquerade" in net and "--masquerade" not in net
    assert _value(net, "--cni-data-dir") == "/srv/n1/cni/data"
    kubelet = nodeconfig.kubelet_args(cfg)
    assert kubelet[-len(net) :] == net
    assert _value(kubelet, "--cni-conf-dir") == "/srv/n1/cni/net.d"  # the agent's too


def test_apiserver_env_only_on_the_control_plane() -> None:
    assert "/etc/tinykube/apiserver.env" not in nodeconfig.render_all(NODE2)
    env = nodeconfig.render_all(NODE1)["/etc/tinykube/apiserver.env"]
    pki = "/etc/tinykube/pki"
    assert env == (
        "TINYKUBE_APISERVER_ARGS=--data-dir /var/lib/tinykube/apiserver"
        " --listen 192.168.56.11:6443 --token-listen 192.168.56.11:6444"
        f" --tls-cert-file {pki}/apiserver.crt --tls-private-key-file {pki}/apiserver.key"
        f" --client-ca-file {pki}/ca.crt"
        f" --kubelet-client-certificate {pki}/apiserver-kubelet-client.crt"
        f" --kubelet-client-key {pki}/apiserver-kubelet-client.key"
        f" --kubelet-certificate-authority {pki}/ca.crt"
        f" --cluster-signing-cert-file {pki}/ca.crt --cluster-signing-key-file {pki}/ca.key\n"
    )
    # tinykube up adds a unix socket for the host's CLI; TCP stays the node's address alone
    args = nodeconfig.apiserver_args(NODE1, ["unix:/srv/api.sock"])
    listens = [args[i + 1] for i, arg in enumerate(args) if arg == "--listen"]
    assert listens == ["192.168.56.11:6443", "unix:/srv/api.sock"]


def test_local_layout_matches_a_private_containerd() -> None:
    """NodePaths.under(base) puts containerd where ContainerdConfig(base/containerd) would."""
    base = Path("/srv/cluster/node1")
    cfg = NodeConfig(node_name="node1", node_ip="10.201.0.11", paths=NodePaths.under(base))
    ours = nodeconfig.containerd_config(cfg)
    plain = ContainerdConfig(
        base=base / "containerd", cni_bin_dir=str(base / "cni" / "bin"),
        cni_conf_dir=str(base / "cni" / "net.d"),
    )  # fmt: skip
    assert ours.render() == plain.render()
    assert ours.config_file == plain.config_file
    assert (
        ours.endpoint
        == plain.endpoint
        == _value(nodeconfig.kubelet_args(cfg), "--runtime-endpoint")
    )
    for path in nodeconfig.render_all(cfg):
        assert path.startswith(str(base) + "/")


def test_docker_runtime_renders_daemon_json_and_flags() -> None:
    cfg = NodeConfig(
        node_name="node1",
        node_ip="10.201.0.11",
        runtime="docker",
        registry_mirror="127.0.0.1:5000",
        paths=NodePaths.under("/srv/n1"),
    )
    files = nodeconfig.render_all(cfg)
    assert not any(path.endswith("config.toml") for path in files)
    daemon = json.loads(files["/srv/n1/docker/daemon.json"])
    assert daemon["bridge"] == "none"
    assert daemon["iptables"] is False
    assert "hosts" not in daemon
    assert daemon["registry-mirrors"] == ["http://127.0.0.1:5000"]
    flags = nodeconfig.render_dockerd_flags(cfg)
    assert flags[:2] == ["-H", "unix:///srv/n1/docker/docker.sock"]
    assert "--data-root=/srv/n1/docker/data" in flags
    assert "--exec-root=/srv/n1/docker/exec" in flags
    assert "--bridge=none" in flags and "--iptables=false" in flags
    assert "--insecure-registry=127.0.0.1:5000" in flags
    kubelet = nodeconfig.kubelet_args(cfg)
    assert _value(kubelet, "--runtime-endpoint") == "unix:///srv/n1/docker/docker.sock"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"node_ip": "192.168.56"}, "node IP '192.168.56' is not an IP address"),
        ({"node_name": "Node_1"}, "node name 'Node_1'"),
        ({"runtime": "cri-o"}, "runtime 'cri-o' is not one of containerd, docker"),
        ({"server": "a b:6443"}, "server 'a b:6443' holds whitespace"),
        ({"paths": NodePaths(cni_bin_dir="opt/cni")}, "path cni_bin_dir 'opt/cni' is not absolute"),
    ],
)
def test_bad_input_names_the_field(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"node_name": "node1", "node_ip": "10.0.0.1", **changes}
    cfg = NodeConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(NodeConfigError, match=message):
        nodeconfig.render_all(cfg)


def test_under_refuses_a_relative_directory() -> None:
    with pytest.raises(NodeConfigError, match="absolute"):
        NodePaths.under("nodes/node1")


def _files_below(root: Path) -> dict[str, str]:
    return {"/" + str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_render_config_writes_exactly_render_all(tmp_path: Path) -> None:
    args = ["node", "render-config", "--node-name", "node1", "--node-ip", "192.168.56.11"]
    args += ["--control-plane", "--registry-mirror", "127.0.0.1:5000", "--root", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    expected = nodeconfig.render_all(
        NodeConfig(
            node_name="node1",
            node_ip="192.168.56.11",
            server="192.168.56.11:6443",
            control_plane=True,
            registry_mirror="127.0.0.1:5000",
        )
    )
    assert _files_below(tmp_path) == expected
    for directory in ("/etc/cni/net.d", "/opt/cni/bin", "/var/lib/kubelet", "/var/log/pods"):
        assert (tmp_path / directory.lstrip("/")).is_dir()
    assert (tmp_path / "var/lib/tinykube/apiserver").is_dir()  # --control-plane
    assert result.output.count("wrote ") == len(expected)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0
    assert again.output.count("unchanged ") == len(expected)
    assert "wrote" not in again.output


def test_render_config_print_writes_nothing(tmp_path: Path) -> None:
    args = ["node", "render-config", "--node-name", "node2", "--node-ip", "192.168.56.12"]
    args += ["--server", "192.168.56.11:6443", "--root", str(tmp_path), "--print"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "# /etc/containerd/config.toml\n" in result.output
    assert "restrict_oom_score_adj = true" in result.output
    assert list(tmp_path.iterdir()) == []


def test_render_config_node_dir_layout(tmp_path: Path) -> None:
    node_dir = tmp_path / "node2"
    args = ["node", "render-config", "--node-name", "node2", "--node-ip", "10.201.0.12"]
    args += ["--server", "unix:/srv/api.sock", "--node-dir", str(node_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    cfg = NodeConfig(
        node_name="node2",
        node_ip="10.201.0.12",
        server="unix:/srv/api.sock",
        paths=NodePaths.under(node_dir),
    )
    written = {str(p): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert written == nodeconfig.render_all(cfg)


def test_render_config_worker_needs_server(tmp_path: Path) -> None:
    args = ["node", "render-config", "--node-name", "node2", "--node-ip", "192.168.56.12"]
    result = CliRunner().invoke(cli, [*args, "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "--server is required on a worker node" in result.output
    bad = CliRunner().invoke(cli, ["node", "render-config", "--node-name", "node2",
                                   "--node-ip", "10.0.0", "--server", "x:1",
                                   "--root", str(tmp_path)])  # fmt: skip
    assert bad.exit_code == 1
    assert "node IP '10.0.0' is not an IP address" in bad.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("runtime", ["containerd", "docker"])
def test_daemons_accept_the_rendered_arguments(runtime: str) -> None:
    """Every flag nodeconfig renders is one `tinykube kubelet/apiserver` parses."""
    import click

    from cli import cmd_kubelet
    from cli.cmd_apiserver import apiserver

    cfg = NodeConfig(
        node_name="node1",
        node_ip="10.201.0.11",
        runtime=runtime,  # type: ignore[arg-type]
        iface="eth1",
        masquerade=False,
        cluster_dns=True,
        control_plane=True,
        paths=NodePaths.under("/srv/n1"),
    )
    for command, args in (
        (cmd_kubelet.kubelet, nodeconfig.kubelet_args(cfg)),
        (apiserver, nodeconfig.apiserver_args(cfg)),
    ):
        with command.make_context(command.name or "", list(args)) as ctx:
            assert isinstance(ctx, click.Context)
            assert not ctx.args, f"{command.name} left {ctx.args} unparsed"
            assert "node_name" not in ctx.params or ctx.params["node_name"] == "node1"


def test_local_cluster_nodes_run_what_render_config_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `tinykube up` node's files and command lines are render-config's, flag for flag."""
    from localcluster import clusterstate
    from localcluster.cluster import Cluster

    monkeypatch.setenv(clusterstate.ENV_ROOT, str(tmp_path / "clusters"))
    node = Cluster("nc", nodes=2, make_current=False).node("node2")  # nothing is started
    cfg = node.config
    node_dir = tmp_path / "clusters" / "nc" / "node2"
    assert cfg.paths == NodePaths.under(node_dir)
    kubelet = node.kubelet_argv()
    start = kubelet.index("kubelet") + 1
    assert kubelet[start : start + len(nodeconfig.kubelet_args(cfg))] == (
        nodeconfig.kubelet_args(cfg)
    )
    assert node.containerd().config.render() == nodeconfig.render_containerd(cfg)
    assert cfg.pki_dir == str(tmp_path / "clusters" / "nc")  # one PKI for the cluster
    apiserver = Cluster("nc", nodes=2, make_current=False).node("node1")
    argv = apiserver.apiserver_argv(["unix:/srv/api.sock"], socket_group="1000")
    start = argv.index("apiserver") + 1
    rendered = nodeconfig.apiserver_args(apiserver.config, ["unix:/srv/api.sock"])
    assert argv[start : start + len(rendered)] == rendered
    assert argv[start + len(rendered) :] == ["--unix-socket-group", "1000"]

    # the same node through the CLI the VMs' provisioning runs
    root = tmp_path / "root"
    args = ["node", "render-config", "--node-name", cfg.node_name, "--node-ip", cfg.node_ip]
    args += ["--server", cfg.server, "--iface", cfg.iface, "--no-masquerade"]
    args += ["--registry-mirror", cfg.registry_mirror, "--node-dir", str(node_dir)]
    args += ["--pki-dir", str(tmp_path / "clusters" / "nc")]
    result = CliRunner().invoke(cli, [*args, "--root", str(root)])
    assert result.exit_code == 0, result.output
    written = {
        "/" + str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()
    }
    assert written == nodeconfig.render_all(cfg)
