"""`tinykube node render-config`: write a node's daemon configuration (localcluster.nodeconfig).

The Vagrant provisioning calls it on each VM, so the files there are the ones
`tinykube up` gives its namespace nodes -- rendered by the same code:

    $ sudo tinykube node render-config --node-name node2 --node-ip 192.168.56.12 \\
          --server 192.168.56.11:6443 --tls-bootstrap
    wrote /etc/containerd/config.toml
    wrote /etc/tinykube/kubelet.env

Running it again with the same flags prints `unchanged PATH` for each file and
touches none, which is how the provisioning stays idempotent: it restarts a
daemon only when one of its files was written. `--print` shows the files
instead of writing them; `--root DIR` writes below DIR (a DESTDIR: the
content still names the real paths); `--node-dir DIR` switches to the layout
of a `tinykube up` node, every path below DIR.

The daemons' credentials are read from `--pki-dir` (/etc/tinykube), the
directory `tinykube pki init --dir` fills on the control-plane node: the
API server's certificates, and a kubeconfig and serving certificate per
node. `--tls-bootstrap` is for a node whose kubelet has no kubeconfig from
pki init but a bootstrap one from `tinykube join`: it then obtains its
client certificate itself (localcluster/pki.py has the flags).

Bad input (a node IP that is no address, an unknown runtime, a worker without
`--server`) is an error naming the flag, exit code 1, nothing written.
"""

from __future__ import annotations

import click

from localcluster import nodeconfig, pki
from localcluster.nodeconfig import NodeConfig, NodeConfigError, NodePaths


@click.group("node")
def node() -> None:
    """Node-level tools: render a node's daemon configuration."""


@node.command("render-config")
@click.option("--node-name", required=True, help="The Node's name (node1, node2, ...).")
@click.option("--node-ip", required=True, help="The node's InternalIP (the private network's).")
@click.option(
    "--runtime",
    type=click.Choice(nodeconfig.RUNTIMES),
    default="containerd",
    show_default=True,
    help="The container runtime the node runs.",
)
@click.option(
    "--server",
    default=None,
    metavar="HOST:PORT",
    help="The API server as this node reaches it (default on --control-plane: NODE_IP:6443).",
)
@click.option("--control-plane", is_flag=True, help="This node runs the API server too.")
@click.option("--iface", default="", help="The underlay interface (must hold the node IP).")
@click.option(
    "--masquerade/--no-masquerade",
    default=True,
    show_default=True,
    help="The netplugin masquerades pod traffic leaving the cluster CIDR.",
)
@click.option(
    "--cluster-dns/--no-cluster-dns",
    default=True,
    show_default=True,
    help="The netplugin serves cluster DNS on 169.254.20.10; the kubelet points pods at it.",
)
@click.option(
    "--registry-mirror",
    default="",
    metavar="HOST:PORT",
    help="A plain-HTTP mirror for docker.io and registry.k8s.io (none with internet).",
)
@click.option(
    "--sandbox-image",
    default=nodeconfig.DEFAULT_SANDBOX_IMAGE,
    show_default=True,
    help="The pod sandbox (pause) image.",
)
@click.option(
    "--node-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Use a `tinykube up` node's layout: every path below this directory.",
)
@click.option(
    "--root",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Write the files below this directory (the content keeps the real paths).",
)
@click.option(
    "--pki-dir",
    default=pki.DEFAULT_PKI_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where `tinykube pki init --dir` put the cluster's certificates and kubeconfigs.",
)
@click.option(
    "--tls-bootstrap",
    is_flag=True,
    help="The kubelet obtains its certificate with `tinykube join`'s bootstrap kubeconfig.",
)
@click.option("--print", "print_only", is_flag=True, help="Print the files; write nothing.")
def render_config(
    node_name: str,
    node_ip: str,
    runtime: nodeconfig.Runtime,
    server: str | None,
    control_plane: bool,
    iface: str,
    masquerade: bool,
    cluster_dns: bool,
    registry_mirror: str,
    sandbox_image: str,
    node_dir: str | None,
    root: str,
    pki_dir: str,
    tls_bootstrap: bool,
    print_only: bool,
) -> None:
    """Write (or print) the containerd/docker config and the daemons' arguments for a node."""
    if server is None:
        if not control_plane:
            raise click.UsageError(
                "--server is required on a worker node (the control-plane node's HOST:PORT)"
            )
        server = f"{node_ip}:{nodeconfig.APISERVER_PORT}"
    try:
        paths = NodePaths.under(click.format_filename(node_dir)) if node_dir else NodePaths()
        cfg = NodeConfig(
            node_name=node_name,
            node_ip=node_ip,
            server=server,
            runtime=runtime,
            iface=iface,
            masquerade=masquerade,
            cluster_dns=cluster_dns,
            control_plane=control_plane,
            registry_mirror=registry_mirror,
            sandbox_image=sandbox_image,
            paths=paths,
            pki_dir=click.format_filename(pki_dir),
            tls_bootstrap=tls_bootstrap,
        )
        files = nodeconfig.render_all(cfg)
        if print_only:
            for path, content in files.items():
                click.echo(f"# {path}")
                click.echo(content, nl=not content.endswith("\n"))
            return
        changed = {str(p) for p in nodeconfig.write_all(cfg, root)}
    except NodeConfigError as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    except OSError as err:
        click.echo(f"error: cannot write {err.filename}: {err.strerror}", err=True)
        raise click.exceptions.Exit(1) from None
    for path in files:
        target = str(nodeconfig.destination(path, root))
        click.echo(f"{'wrote' if target in changed else 'unchanged'} {target}")
