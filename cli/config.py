"""Where the API server is and who the CLI is to it: tinykube's clientcmd loading rules.

kubectl finds its cluster and its credentials through a chain of sources
(flag, $KUBECONFIG, ~/.kube/config). tinykube keeps the chain, with the
local clusters of `tinykube up` in it, and resolves it to one
apimachinery.kubeconfig.ClientConfig (the target to dial, and TLS
material when there is any):

    1. `--server HOST:PORT[,HOST:PORT...]`     the flag wins (with --kubeconfig: that
                                               file's credentials, at this address);
                                               a list: several API servers, failed over
    2. `--kubeconfig PATH`                     a kubeconfig the user named
    3. $TINYKUBE_SERVER                        an address, per shell
    4. `--cluster NAME` / $TINYKUBE_CLUSTER    a local cluster of `tinykube up`, by name
    5. $KUBECONFIG                             its first file (kubectl merges the list;
                                               tinykube reads one)
    6. $TINYKUBE_CONFIG                        a config file the user named
    7. the most recent local cluster           the one `tinykube up` made last
    8. ~/.tinykube/config                      a kubeconfig, or the older `server:` file
    9. 127.0.0.1:6443                          the apiserver's default port

Local clusters (4 and 7) are found through localcluster.clusterstate: each
has a state file under /var/lib/tinykube/clusters/<name>/, and the API
server listens on a unix socket there (`unix:/var/.../<name>/api.sock`).
Whoever may open that socket (root, and the group of the user who ran
`sudo tinykube up`) is the cluster's admin -- file permissions are the
trust, as for the Docker socket -- so the host's CLI needs no address on
any network and no certificate. A running local cluster comes before
~/.tinykube/config as `kind create cluster` switches kubectl's current
context: the cluster just made is the one a user means next; after
`tinykube down` the file applies again. A cluster named by `--cluster`
that does not exist is an error, not a fall-through.

A config file (2, 5, 6, 8) is one of two forms, told apart by their keys:

    apiVersion: v1                  a kubeconfig (kubectl's file, `tinykube pki init`'s
    kind: Config                    admin.conf, what `tinykube up` writes for its user):
    clusters: [...]                 read by apimachinery.kubeconfig.load -- the server
    users: [...]                    over TLS, the CA, a client certificate or a token
    contexts: [...]
    current-context: ...

    server: 192.168.56.11:6443      the older tinykube file: an address, nothing else

A file with `apiVersion`, `kind`, `clusters`, `users`, `contexts` or
`current-context` is a kubeconfig; otherwise its `server` key is read.

Failure modes: a missing ~/.tinykube/config is no error (step 9 applies);
a file that is not a YAML mapping, a `server` that is not a non-empty
string, or a kubeconfig with a bad field is a `ConfigError` naming the
file and the field -- silently falling through to the default would send
commands to the wrong cluster, and a credential we cannot read is not one
to drop. A file the user named (2, 5, 6) that does not exist is an error
too, for the same reason. A `http://` or `https://` prefix on a plain
address some users will paste from kubectl habits is stripped, since the
address is dialed as HOST:PORT.

The API is TLS-only on TCP, so the plain addresses of steps 1, 3 and 9
reach a unix socket, or a test's server; a real cluster's TCP port
refuses them at the handshake, and the CLI then says that a kubeconfig
is needed (cli.context.describe_error).

The variables' names live in apimachinery.clientcmd (as client-go's
clientcmd keeps $KUBECONFIG's), where localcluster, which sets them for the
`tinykube` commands it runs, finds them too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apimachinery import kubeconfig
from apimachinery.clientcmd import ENV_CLUSTER, ENV_CONFIG, ENV_KUBECONFIG, ENV_SERVER
from apimachinery.kubeconfig import ClientConfig

DEFAULT_SERVER = "127.0.0.1:6443"
KUBECONFIG_KEYS = ("apiVersion", "kind", "clusters", "users", "contexts", "current-context")


class ConfigError(Exception):
    """The configuration names no usable server; the message says where and why."""


def plain(address: str) -> ClientConfig:
    """A ClientConfig for a bare address: no TLS, no identity (a unix socket, a test)."""
    return ClientConfig(server=address, target=address)


def default_config_path(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it explicitly."""
    env = os.environ if env is None else env
    explicit = env.get(ENV_CONFIG, "")
    if explicit:
        return Path(explicit).expanduser(), True
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".tinykube" / "config", False


def kubeconfig_env_path(env: Mapping[str, str]) -> Path | None:
    """The first file of $KUBECONFIG (a ':'-separated list), None when it names none."""
    for item in env.get(ENV_KUBECONFIG, "").split(os.pathsep):
        if item.strip():
            return Path(item.strip()).expanduser()
    return None


def normalize_server(value: str) -> str:
    """`https://10.0.0.1:6443/` -> `10.0.0.1:6443`; a bare host gets port 6443; a
    comma-separated list of servers (failover, apimachinery/channel_failover.py) is
    normalized item by item."""
    if "," in value:
        return ",".join(filter(None, (normalize_server(v) for v in value.split(","))))
    text = value.strip()
    for scheme in ("http://", "https://", "grpc://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if text and not text.startswith("unix:") and ":" not in text.rsplit("]", 1)[-1]:
        text += ":6443"
    return text


def load_config_file(
    path: Path, *, required: bool = False, origin: str = ""
) -> ClientConfig | None:
    """The ClientConfig a config file names (either form); None when the file does not
    exist and is not `required`, or names no server."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            named = f" (from {origin})" if origin else ""
            raise ConfigError(f"config file {path}{named} does not exist") from None
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import yaml  # here, not at the top: most processes (every daemon) have no config file

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping with a 'server' key")
    if any(key in data for key in KUBECONFIG_KEYS):
        return _kubeconfig(path, text)
    return _server_file(path, data)


def _kubeconfig(path: Path, text: str) -> ClientConfig:
    try:
        return kubeconfig.loads(text, source=str(path), base_dir=path.parent)
    except kubeconfig.KubeconfigError as err:
        raise ConfigError(str(err)) from None


def _server_file(path: Path, data: dict[str, Any]) -> ClientConfig | None:
    server = data.get("server", "")
    if not isinstance(server, str):
        raise ConfigError(f"config file {path}: 'server' must be a string like 127.0.0.1:6443")
    address = normalize_server(server)
    return plain(address) if address else None


def read_config_file(path: Path, *, required: bool = False) -> str:
    """The address a config file names, "" when there is none (the file may be absent)."""
    found = load_config_file(path, required=required, origin=f"${ENV_CONFIG}")
    return found.target if found is not None else ""


def local_cluster_server(name: str, env: Mapping[str, str] | None = None) -> str:
    """The CLI's address of local cluster `name` (its API server's unix socket)."""
    from localcluster import clusterstate

    try:
        return clusterstate.load(name, env).client_address
    except clusterstate.ClusterStateError as err:
        raise ConfigError(str(err)) from None


def resolve(
    flag: str | None = None,
    env: Mapping[str, str] | None = None,
    cluster: str | None = None,
    kubeconfig_flag: str | None = None,
) -> ClientConfig:
    """The API server and the credentials to reach it, by the module docstring's precedence."""
    from localcluster import clusterstate

    env = os.environ if env is None else env
    named = _named_kubeconfig(kubeconfig_flag)
    if flag:
        address = normalize_server(flag)
        if named is None:
            return plain(address)
        return dataclasses.replace(named, server=address, target=address)
    if named is not None:
        return named
    if env.get(ENV_SERVER):
        return plain(normalize_server(env[ENV_SERVER]))
    name = cluster or env.get(ENV_CLUSTER, "")
    if name:
        return plain(local_cluster_server(name, env))
    for path, origin in _named_files(env):
        found = load_config_file(path, required=True, origin=origin)
        return found or plain(DEFAULT_SERVER)
    latest = clusterstate.current(env)
    if latest:
        return plain(local_cluster_server(latest, env))
    path, _ = default_config_path(env)
    return load_config_file(path) or plain(DEFAULT_SERVER)


def _named_kubeconfig(flag: str | None) -> ClientConfig | None:
    if not flag:
        return None
    found = load_config_file(Path(flag).expanduser(), required=True, origin="--kubeconfig")
    if found is None:
        raise ConfigError(f"kubeconfig {flag} (from --kubeconfig) names no server")
    return found


def _named_files(env: Mapping[str, str]) -> list[tuple[Path, str]]:
    """The files the environment names, in precedence order (steps 5 and 6)."""
    files = []
    from_kubeconfig = kubeconfig_env_path(env)
    if from_kubeconfig is not None:
        files.append((from_kubeconfig, f"${ENV_KUBECONFIG}"))
    path, explicit = default_config_path(env)
    if explicit:
        files.append((path, f"${ENV_CONFIG}"))
    return files


def resolve_server(
    flag: str | None = None,
    env: Mapping[str, str] | None = None,
    cluster: str | None = None,
    kubeconfig_flag: str | None = None,
) -> str:
    """Just the address `resolve` dials (HOST:PORT or unix:PATH)."""
    return resolve(flag, env, cluster, kubeconfig_flag).target
