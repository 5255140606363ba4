"""One command, one event loop, one Client; every expected failure one line.

Like kubectl's cmdutil.Factory + CheckErr: each verb is an `async def` that
takes a `Client` and returns an exit code; `run` opens the client, runs the
coroutine under a single `asyncio.run`, closes the client, and turns errors
into kubectl's words on stderr:

    StatusError from the server   Error from server (NotFound): pods "x" not found
    server unreachable            error: cannot reach the API server at 127.0.0.1:6443: ...
    TLS port, no credentials      the same, and: the API server's TCP port is TLS only:
                                  give a kubeconfig (--kubeconfig, $KUBECONFIG, ...)
    manifest decode error         error: web.yaml: document 1: unknown field "spec.replica"
    local usage problem           error: the server doesn't have a resource type "pdos"

Exit code 1 for all of them; never a traceback for a failure a user can
cause. Ctrl-C ends a command quietly (exit 130, as a shell reports SIGINT).

The client is built from the resolved configuration (cli.config.resolve):
`Options.client_config` is the kubeconfig's context -- target, CA, client
certificate or token -- or a bare address. `make_client` is a module
attribute so tests can swap in a fake client without a server:
`monkeypatch.setattr(context, "make_client", lambda opts: fake)`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from apimachinery import errors

if TYPE_CHECKING:
    from apimachinery.client import Client
    from apimachinery.kubeconfig import ClientConfig


F = TypeVar("F", bound=Callable[..., Any])


class CommandError(Exception):
    """A problem found on the client side; printed as `error: <message>`."""


@dataclass(frozen=True)
class Options:
    """The global flags every verb sees."""

    server: str  # the target dialed: HOST:PORT or unix:PATH (error messages name it)
    namespace: str = "default"
    namespace_explicit: bool = False  # -n given: manifests naming another namespace are refused
    client_config: ClientConfig | None = field(default=None, compare=False)

    @property
    def secure(self) -> bool:
        """Whether the client speaks TLS (a kubeconfig's https:// server)."""
        return self.client_config is not None and self.client_config.tls

    def new_client(self, timeout: float = 30.0) -> Client:
        """A client for the resolved server, with the kubeconfig's credentials if any."""
        from apimachinery.client import Client

        if self.client_config is None:
            client = Client(self.server, timeout=timeout)
        else:
            client = Client.from_config(self.client_config, timeout=timeout)
        client.on_warning(print_warning)
        return client


_printed_warnings: set[str] = set()


def print_warning(text: str) -> None:
    """A warning from the server, as kubectl prints it (once: apply's dry run and write
    would otherwise both show it)."""
    if text not in _printed_warnings:
        _printed_warnings.add(text)
        print(f"Warning: {text}", file=sys.stderr)


def resolve_options(
    server: str | None, namespace: str | None, cluster: str | None, kubeconfig: str | None
) -> Options:
    """The global flags resolved (cli.config); a kubeconfig context's namespace is the
    default namespace, as kubectl takes it. Raises cli.config.ConfigError."""
    from cli import config

    resolved = config.resolve(server, cluster=cluster, kubeconfig_flag=kubeconfig)
    chosen = namespace or resolved.namespace or "default"
    return Options(resolved.target, chosen, namespace is not None, resolved)


def _default_client(opts: Options) -> Client:
    return opts.new_client()


make_client: Callable[[Options], Any] = _default_client


def is_decode_error(err: BaseException) -> bool:
    try:
        from apimachinery import codec
    except ImportError:  # pragma: no cover - the codec ships with the package
        return False
    return isinstance(err, codec.DecodeError)


TLS_HINT = (
    "the API server's TCP port is TLS only: give a kubeconfig "
    "(--kubeconfig, $KUBECONFIG or ~/.tinykube/config)"
)


def describe_error(err: BaseException, server: str, secure: bool = True) -> str:
    """The one line kubectl would print for `err` (`secure`: the client had TLS)."""
    if isinstance(err, errors.ServiceUnavailable):
        text = err.message
        if "cannot reach the API server" not in text:
            text = f"cannot reach the API server at {server}: {text}"
        hint = not secure and not server.startswith("unix:") and _refused_plaintext(text)
        return f"error: {text}" + (f"\n{TLS_HINT}" if hint else "")
    if is_decode_error(err) or isinstance(err, CommandError):
        return f"error: {err}"
    if isinstance(err, errors.Unauthorized):  # kubectl's own words for a 401
        return f"error: You must be logged in to the server ({err.message})"
    if isinstance(err, errors.StatusError):
        return f"Error from server ({err.reason}): {err.message}"
    return f"error: {err}"


def _refused_plaintext(text: str) -> bool:
    """A plain-text client at a TLS port: grpc sees the connection closed or a bad frame."""
    return any(
        word in text for word in ("connection closed", "Socket closed", "frame", "handshake")
    )


def echo_err(text: str) -> None:
    click.echo(text, err=True)


def run(opts: Options, verb: Callable[[Client], Awaitable[int]]) -> int:
    """Run one verb against a fresh client; the exit code (0 ok, 1 failure, 130 Ctrl-C)."""

    from cli import traceroot

    async def main() -> int:
        client = make_client(opts)
        try:
            with traceroot.root_span(client):  # a changing verb starts a trace (traceroot.py)
                return await verb(client)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    except (errors.StatusError, CommandError) as err:
        echo_err(describe_error(err, opts.server, opts.secure))
        return 1
    finally:
        traceroot.finish()


async def until_signalled(main: Awaitable[Any]) -> bool:
    """Run a daemon's main coroutine until it ends, or SIGTERM / SIGINT cancels it.

    True when a signal stopped it (the daemon's tasks have then seen CancelledError and
    cleaned up, as `kill` or Ctrl-C on kubelet or kube-proxy lets them)."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def first_to_end(*daemons: Awaitable[Any]) -> None:
    """Run daemons side by side until one ends: then stop the others, and raise its error.

    One process, several loops (the kubelet and its in-process network agent):
    if one fails, the process must fail as a whole, so that its supervisor
    (systemd, `tinykube up`) restarts both rather than leaving one half running.
    Cancelled from outside, it cancels every daemon.
    """
    tasks = [asyncio.ensure_future(d) for d in daemons]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error


def exit_with(code: int) -> None:
    """Leave the click command with `code` (click's own way, so CliRunner sees it)."""
    if code:
        sys.stdout.flush()
        raise click.exceptions.Exit(code)


def namespace_option(fn: F) -> F:
    """`-n/--namespace` on the verb itself too, so `get pods -n kube-system` works."""
    return click.option(
        "-n", "--namespace", "namespace", default=None, help="Namespace for this request."
    )(fn)


def effective(opts: Options, namespace: str | None) -> Options:
    """The global options with a verb-level `-n` applied."""
    if not namespace:
        return opts
    return Options(opts.server, namespace, True, opts.client_config)
