"""Where the API server is: tinykube's much smaller kubeconfig.

kubectl finds its cluster through a chain of sources (flag, $KUBECONFIG,
~/.kube/config, in-cluster). tinykube keeps the chain and drops everything
else, since its API has no authentication yet:

    1. `--server HOST:PORT`                    the flag wins
    2. $TINYKUBE_SERVER                        per shell
    3. `--cluster NAME` / $TINYKUBE_CLUSTER    a local cluster of `tinykube up`, by name
    4. $TINYKUBE_CONFIG                        a config file the user named
    5. the most recent local cluster           the one `tinykube up` made last
    6. ~/.tinykube/config                      the config file's `server: HOST:PORT`
    7. 127.0.0.1:6443                          the apiserver's default listen address

Local clusters (3 and 5) are found through localcluster.clusterstate: each
has a state file under /var/lib/tinykube/clusters/<name>/, and the API
server listens on a unix socket there (`unix:/var/.../<name>/api.sock`), so
the host's CLI needs no address on any network. A running local cluster
comes before ~/.tinykube/config as `kind create cluster` switches kubectl's
current context: the cluster just made is the one a user means next; after
`tinykube down` the file applies again. A cluster named by `--cluster` that
does not exist is an error, not a fall-through.

The variables' names live in apimachinery.clientcmd (as client-go's
clientcmd keeps $KUBECONFIG's), where localcluster, which sets them for the
`tinykube` commands it runs, finds them too.

The config file is YAML with one key that matters:

    server: 192.168.56.10:6443

Failure modes: a missing file is no error (step 4 applies); a file that is
not a YAML mapping, or whose `server` is not a non-empty string, is a
`ConfigError` naming the file -- silently falling through to the default
would send commands to the wrong cluster. An explicitly named
$TINYKUBE_CONFIG that does not exist is an error too, for the same reason.
A `http://` or `https://` prefix some users will paste from kubectl habits
is stripped, since the API is gRPC on a plain host:port.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from apimachinery.clientcmd import ENV_CLUSTER, ENV_CONFIG, ENV_SERVER

DEFAULT_SERVER = "127.0.0.1:6443"


class ConfigError(Exception):
    """The configuration names no usable server; the message says where and why."""


def default_config_path(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it explicitly."""
    env = os.environ if env is None else env
    explicit = env.get(ENV_CONFIG, "")
    if explicit:
        return Path(explicit).expanduser(), True
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".tinykube" / "config", False


def normalize_server(value: str) -> str:
    """`https://10.0.0.1:6443/` -> `10.0.0.1:6443`; a bare host gets port 6443."""
    text = value.strip()
    for scheme in ("http://", "https://", "grpc://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if text and ":" not in text.rsplit("]", 1)[-1]:
        text += ":6443"
    return text


def read_config_file(path: Path, *, required: bool = False) -> str:
    """The `server` the file names, "" when the file does not exist (and is not required)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} (from ${ENV_CONFIG}) does not exist") from None
        return ""
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import yaml  # here, not at the top: most processes (every daemon) have no config file

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return ""
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping with a 'server' key")
    server = data.get("server", "")
    if not isinstance(server, str):
        raise ConfigError(f"config file {path}: 'server' must be a string like 127.0.0.1:6443")
    return normalize_server(server)


def local_cluster_server(name: str, env: Mapping[str, str] | None = None) -> str:
    """The CLI's address of local cluster `name` (its API server's unix socket)."""
    from localcluster import clusterstate

    try:
        return clusterstate.load(name, env).client_address
    except clusterstate.ClusterStateError as err:
        raise ConfigError(str(err)) from None


def resolve_server(
    flag: str | None = None,
    env: Mapping[str, str] | None = None,
    cluster: str | None = None,
) -> str:
    """The API server address, by the precedence in the module docstring."""
    from localcluster import clusterstate

    env = os.environ if env is None else env
    if flag:
        return normalize_server(flag)
    if env.get(ENV_SERVER):
        return normalize_server(env[ENV_SERVER])
    name = cluster or env.get(ENV_CLUSTER, "")
    if name:
        return local_cluster_server(name, env)
    path, explicit = default_config_path(env)
    if explicit:
        return read_config_file(path, required=True) or DEFAULT_SERVER
    latest = clusterstate.current(env)
    if latest:
        return local_cluster_server(latest, env)
    from_file = read_config_file(path)
    return from_file or DEFAULT_SERVER
