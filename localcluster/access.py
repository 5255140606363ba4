"""Who may use a local cluster, and how: its PKI, the admin's socket, the user's kubeconfig.

`tinykube up` secures its cluster as kubeadm secures a machine, and kind
hands the result to its user:

1. the PKI: `tinykube pki init --dir <cluster dir> --apiserver-address
   <node1 IP> --node node1=10.201.0.11 --node node2=10.201.0.12` (run as a
   command, localcluster/pki.py says why): the CA, the API server's
   certificates, each kubelet's kubeconfig (system:node:NAME) and serving
   certificate, admin.conf. Keys and kubeconfigs are 0600, pki/ is 0700;
   the cluster directory itself stays 0755, because the host CLI's socket
   is in it;
2. the API server (nodeconfig.apiserver_args): mTLS on 10.201.0.11:6443,
   bearer tokens on :6444, and `unix:<dir>/api.sock` for the host's CLI,
   0660 and owned by the group of the user who ran `sudo tinykube up`
   (`--unix-socket-group`, `socket_group()`): whoever may open it is the
   admin, as with the Docker socket, so that user needs neither sudo nor a
   certificate on the host;
3. each kubelet with its kubeconfig and its mTLS server (nodeconfig.kubelet_args);
4. Pod Security: once the API server answers, the `default` namespace is
   applied with `pod-security.kubernetes.io/enforce: baseline`, so a pod
   asking for the host's namespaces, privileged mode or a hostPath is
   refused there (the API server's PodSecurity admission reads the label);
5. the user's kubeconfig (`write_user_kubeconfig`): admin.conf's credentials
   for cluster `tinykube-<name>`, server https://10.201.0.11:6443, at
   ~/.tinykube/config of $SUDO_USER (root's own when there is no sudo),
   owned by them, 0600 in a 0700 directory. The host has no route to that
   address -- the CLI there uses the socket, since a running local cluster
   comes before ~/.tinykube/config (cli/config.py) -- but every namespace of
   the cluster does: `tinykube node-shell underlay -- tinykube --kubeconfig
   ~/.tinykube/config get nodes` is a remote admin's session over TLS.

The user's file is written only when there is none, or when it is one that
`tinykube up` wrote: its first line is MARKER followed by the cluster's
name, a comment YAML readers skip. Any other file is the user's own and is
left alone (up says so). `tinykube down` removes the file only when it
names that very cluster, as `kind delete cluster` removes its context.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.clusterstate import ClusterState
from localcluster.pki import PkiLayout
from localcluster.processes import pki_init

MARKER = "# written by tinykube up for cluster "
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_LEVEL = "baseline"
FIELD_MANAGER = "tinykube-up"


def ensure_pki(directory: Path, server_ip: str, nodes: Mapping[str, str]) -> PkiLayout:
    """The cluster's PKI in its directory (kept when it exists): step 1."""
    layout = PkiLayout(str(directory))
    pki_init(layout, [server_ip], nodes)
    return layout


def socket_group() -> str:
    """The group that may open the admin socket: the sudo user's ($SUDO_GID), else ""
    (root's alone)."""
    gid = os.environ.get("SUDO_GID", "")
    return gid if gid.isdigit() and int(gid) != 0 else ""


async def enforce_baseline(client: Any) -> None:
    """Label namespace `default` for Pod Security's baseline level (step 4)."""
    from protos import core_pb2, meta_pb2

    namespace = core_pb2.Namespace(
        metadata=meta_pb2.ObjectMeta(name="default", labels={ENFORCE_LABEL: ENFORCE_LEVEL})
    )
    await client.apply(namespace, field_manager=FIELD_MANAGER)


@dataclass(frozen=True)
class User:
    """Whose kubeconfig `up` writes: the sudo user, or the one running it."""

    name: str
    uid: int
    gid: int
    home: Path

    @property
    def config(self) -> Path:
        return self.home / ".tinykube" / "config"

    @classmethod
    def invoking(cls) -> User | None:
        """$SUDO_USER's entry, else the process's own user; None when unknown."""
        try:
            name = os.environ.get("SUDO_USER", "")
            entry = pwd.getpwnam(name) if name else pwd.getpwuid(os.getuid())
        except KeyError:
            return None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def written_by_up(path: Path) -> str | None:
    """The cluster named by a kubeconfig `up` wrote; None for any other (or no) file."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith(MARKER):
        return None
    return first[len(MARKER) :].strip()


def user_kubeconfig(name: str, layout: PkiLayout, server: str) -> str:
    """admin.conf's credentials as cluster `tinykube-NAME`, with the marker line."""
    from apimachinery import kubeconfig

    admin = kubeconfig.load(layout.admin_conf)
    if admin.ca_pem is None:
        raise ValueError(f"{layout.admin_conf} holds no certificate-authority")
    document = kubeconfig.new_config(
        server=f"https://{server}",
        ca_pem=admin.ca_pem,
        user=f"tinykube-{name}-admin",
        cert_pem=admin.cert_pem,
        key_pem=admin.key_pem,
        cluster=f"tinykube-{name}",
    )
    return f"{MARKER}{name}\n" + kubeconfig.dumps(document)


def write_user_kubeconfig(
    name: str, layout: PkiLayout, server: str, say: Callable[[str], None]
) -> Path | None:
    """Step 5; the path written, None when the user's file was left alone."""
    user = User.invoking()
    if user is None:
        return None
    path = user.config
    if path.exists() and written_by_up(path) is None:
        say(f"  note         {path} is not one tinykube up wrote: left as it is")
        return None
    from apimachinery import certs

    directory = path.parent
    made = not directory.exists()
    certs.write_file(path, user_kubeconfig(name, layout, server).encode(), mode=0o600)
    with contextlib.suppress(OSError):
        if made:
            os.chown(directory, user.uid, user.gid)
        os.chown(path, user.uid, user.gid)
    return path


def remove_user_kubeconfig(name: str) -> Path | None:
    """`down`: the user's kubeconfig if `up` wrote it for cluster `name`; what was removed."""
    user = User.invoking()
    if user is None or written_by_up(user.config) != name:
        return None
    user.config.unlink(missing_ok=True)
    return user.config


def describe(state: ClusterState, say: Callable[[str], None]) -> None:
    """What the cluster is and how to reach it: the lines after `up`."""
    say(f"  API server   {state.server} (nodes), {state.client_address} (this host)")
    say("  security     TLS with client certificates (CA, kubeconfigs in the cluster")
    say("               directory); this host's socket is the admin, for its group")
    say(f"  pod security namespace default: {ENFORCE_LABEL}={ENFORCE_LEVEL}")
    user = User.invoking()
    if user is not None and written_by_up(user.config) == state.name:
        say(f"  kubeconfig   {user.config} (admin over TLS, from the cluster's network)")
    say(f"  logs         {state.log_dir}")
    say("  try          tinykube get nodes -o wide")
    say(f"               tinykube node-shell {state.nodes[0]} -- ip addr")
    say(f"               tinykube down --name {state.name}")
