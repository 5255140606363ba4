"""`tinykube apiserver`: the API server, with the scheduler and controllers unless turned off.

The flags are kube-apiserver's where it has one. Security is not optional:
every TCP address is TLS (apiserver/listeners.py explains the two ports), so
a TCP `--listen` needs the files `tinykube pki init` writes:

    tinykube pki init --dir /etc/tinykube --apiserver-address 192.168.56.11
    tinykube apiserver --data-dir /var/lib/tinykube/apiserver \\
        --listen 192.168.56.11:6443 --token-listen 192.168.56.11:6444 \\
        --listen unix:/run/tinykube/api.sock \\
        --tls-cert-file /etc/tinykube/pki/apiserver.crt \\
        --tls-private-key-file /etc/tinykube/pki/apiserver.key \\
        --client-ca-file /etc/tinykube/pki/ca.crt

Without them only `unix:` addresses may be given (the local admin's socket):
the server refuses to start and says which flags are missing.

`--max-requests-inflight` (400) and `--max-mutating-requests-inflight` (200)
are kube-apiserver's: beyond them a request is refused at once with 429
TooManyRequests instead of queueing (apiserver/inflight.py); 0 is no limit.
`--max-loop-lag-ms` (100) refuses users' writes the same way while the
server's event loop runs that far behind (apiserver/looplag.py; the nodes,
the scheduler and the controller manager are always served); 0 turns it off.

The store is SQLite in the data directory unless `--storage` says otherwise:
`sqlite:PATH` for a database file elsewhere, or an etcd cluster, reached over
TLS with kube-apiserver's own flags (docs/etcd.md):

    tinykube apiserver --data-dir /var/lib/tinykube/apiserver \
        --storage etcd://192.168.56.11:2379,192.168.56.12:2379,192.168.56.13:2379 \
        --etcd-cafile /etc/tinykube/pki/etcd/ca.crt \
        --etcd-certfile /etc/tinykube/pki/apiserver-etcd-client.crt \
        --etcd-keyfile /etc/tinykube/pki/apiserver-etcd-client.key
"""

from __future__ import annotations

import asyncio
import logging

import click

from cli.cmd_controlplane import (
    controller_flags,
    controller_options,
    leader_election_config,
    leader_election_flags,
)
from cli.durations import Duration
from cli.main import configure_logging


@click.command("apiserver")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the server's state: the SQLite store, the loopback socket"
    " (created if missing, made 0700).",
)
@click.option(
    "--listen",
    "listen_addresses",
    multiple=True,
    default=["127.0.0.1:6443"],
    show_default=True,
    help="HOST:PORT (TLS: a client certificate or a token) or unix:/PATH (the admin); repeat.",
)
@click.option(
    "--token-listen",
    multiple=True,
    help="HOST:PORT served over TLS for bearer tokens (bootstrap tokens, --token-auth-file).",
)
@click.option("--tls-cert-file", default="", help="The serving certificate (PEM).")
@click.option("--tls-private-key-file", default="", help="The serving certificate's key (PEM).")
@click.option("--client-ca-file", default="", help="The CA that signs client certificates.")
@click.option("--token-auth-file", default="", help="Static tokens: CSV token,user,uid,groups.")
@click.option("--unix-socket-group", default="", help="Group owning the unix sockets (mode 0660).")
@click.option(
    "--storage",
    default="sqlite",
    show_default=True,
    help="The store: sqlite (in --data-dir), sqlite:PATH (a database file),"
    " or etcd://HOST:PORT[,HOST:PORT...] (an etcd cluster; its members in any order).",
)
@click.option("--etcd-cafile", default="", help="The CA of etcd's serving certificate (TLS).")
@click.option("--etcd-certfile", default="", help="The client certificate for etcd (PEM).")
@click.option("--etcd-keyfile", default="", help="The client certificate's key (PEM).")
@click.option(
    "--scheduler/--no-scheduler", default=True, show_default=True, help="Run the scheduler here."
)
@click.option(
    "--controllers/--no-controllers",
    default=True,
    show_default=True,
    help="Run the controllers here.",
)
@click.option(
    "--default-toleration-seconds",
    type=int,
    default=300,
    show_default=True,
    help="How long pods tolerate a not-ready/unreachable node before eviction.",
)
@click.option(
    "--encryption-provider-config",
    default="",
    type=click.Path(dir_okay=False),
    help="An EncryptionConfiguration file: the resources (secrets) to encrypt at rest, and how.",
)
@click.option(
    "--event-ttl",
    type=Duration(),
    default="1h",
    show_default=True,
    help="How long an Event is kept after its last occurrence (30m, 1h, 90s).",
)
@click.option(
    "--max-requests-inflight",
    type=click.IntRange(min=0),
    default=400,
    show_default=True,
    help="Read-only requests served at once; more are refused with 429 (0: no limit).",
)
@click.option(
    "--max-mutating-requests-inflight",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Mutating requests served at once; more are refused with 429 (0: no limit).",
)
@click.option(
    "--max-loop-lag-ms",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Users' mutating requests are refused with 429 while the event loop lags more than"
    " this many milliseconds behind (0: never; nodes and control-plane components are served).",
)
@controller_flags
@leader_election_flags(None)
@click.option(
    "--kubelet-client-certificate", default="", help="The client certificate for kubelets."
)
@click.option("--kubelet-client-key", default="", help="Its key.")
@click.option(
    "--kubelet-certificate-authority", default="", help="The CA of the kubelets' certificates."
)
@click.option(
    "--advertise-address",
    default="",
    help="The IP other members of the cluster reach this server at: listed, with the port of"
    " the first TCP --listen, in the kubernetes Service's Endpoints while the server lives.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def apiserver(**flags: object) -> None:
    """Run the API server (with scheduler and controllers) in the foreground."""
    configure_logging(logging.DEBUG if flags["verbose"] else logging.INFO)
    from apiserver.storage.interface import StorageError

    flags["storage"] = _storage_spec(flags)
    if float(str(flags["event_ttl"])) <= 0:
        raise click.BadParameter("must be a positive duration", param_hint="'--event-ttl'")
    try:
        asyncio.run(_run(flags))
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, ValueError, StorageError) as err:  # a bad config, no etcd
        logging.getLogger("cli.apiserver").error("failed", extra={"error": str(err)})
        raise click.exceptions.Exit(1) from None


async def _run(flags: dict[str, object]) -> None:
    from apiserver.auth.authenticator import parse_token_file
    from apiserver.inflight import InflightLimits
    from apiserver.listeners import ServingOptions
    from apiserver.proxy import KubeletClientConfig
    from cli.context import until_signalled
    from controlplane import serve_control_plane

    options = controller_options(
        float(str(flags["node_monitor_grace_period"])),
        str(flags["cluster_signing_cert_file"]),
        str(flags["cluster_signing_key_file"]),
        toleration=int(str(flags["default_toleration_seconds"])),
    )
    listen, *extra_listen = _strings(flags["listen_addresses"])
    token_file = str(flags["token_auth_file"])
    tokens = None
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            tokens = parse_token_file(f.read(), token_file)
    serving = ServingOptions(
        listen=tuple(extra_listen),
        token_listen=_strings(flags["token_listen"]),
        tls_cert_file=str(flags["tls_cert_file"]),
        tls_private_key_file=str(flags["tls_private_key_file"]),
        client_ca_file=str(flags["client_ca_file"]),
        unix_socket_group=str(flags["unix_socket_group"]),
    )
    kubelet_client = KubeletClientConfig.from_files(
        str(flags["kubelet_client_certificate"]),
        str(flags["kubelet_client_key"]),
        str(flags["kubelet_certificate_authority"]),
    )
    server = serve_control_plane(
        str(flags["data_dir"]),
        listen,
        kubelet_client=kubelet_client,
        serving=serving,
        static_tokens=tokens,
        storage=str(flags["storage"]),
        scheduler=bool(flags["scheduler"]),
        controllers=bool(flags["controllers"]),
        options=options,
        encryption_provider_config=str(flags["encryption_provider_config"]),
        event_ttl=float(str(flags["event_ttl"])),
        leader_elect=None if flags["leader_elect"] is None else bool(flags["leader_elect"]),
        leader_election=leader_election_config({**flags, "leader_elect": True}, "kube-scheduler"),
        advertise_address=str(flags["advertise_address"]),
        inflight=InflightLimits(
            max_requests_inflight=int(str(flags["max_requests_inflight"])),
            max_mutating_requests_inflight=int(str(flags["max_mutating_requests_inflight"])),
            max_loop_lag_ms=int(str(flags["max_loop_lag_ms"])),
        ),
    )
    if await until_signalled(server):
        logging.getLogger("cli.apiserver").info("stopped", extra={"listen": listen})


def _storage_spec(flags: dict[str, object]) -> str:
    """`--storage` with the --etcd-* TLS files folded in; a usage error if they do not fit."""
    from apiserver.storage import storage_spec
    from apiserver.storage.interface import StorageError

    try:
        return storage_spec(
            str(flags["storage"]),
            etcd_cafile=str(flags["etcd_cafile"]),
            etcd_certfile=str(flags["etcd_certfile"]),
            etcd_keyfile=str(flags["etcd_keyfile"]),
        )
    except StorageError as err:
        raise click.BadParameter(str(err), param_hint="'--storage'") from None


def _strings(value: object) -> tuple[str, ...]:
    assert isinstance(value, tuple)
    return tuple(str(v) for v in value)
