"""The `tinykube` command group: global flags, the verbs, and `tinykube apiserver`.

Global flags come before the verb (`tinykube --server 10.0.0.1:6443 get
pods`); `-n` is accepted both there and after the verb, as kubectl users
type it. The server address is resolved lazily (cli.config) so that
`tinykube --help` works with a broken config file.

`tinykube apiserver` runs the API server in the foreground with structured
logs on stderr -- one line per record, a constant message then the context
as key=value pairs:

    2024-05-01T10:00:00.123Z INFO apiserver.server serving listen=127.0.0.1:6443 storage=sqlite

Every other verb lives in a cli.cmd_* module that is imported only when that
verb runs (LazyGroup, LAZY_COMMANDS): the long-lived daemons (`apiserver`,
`kubelet`, `netplugin`) then carry only their own modules, and `tinykube
--help` imports none of them. A new verb is one line in LAZY_COMMANDS.

SIGTERM and SIGINT cancel the server task; `serve` shuts down gracefully in
its own `finally` and the process exits 0, which is what systemd and
`tinykube up` expect from a clean stop.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from typing import Any

import click

# The attributes every LogRecord has; anything else came in through `extra=`.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class KeyValueFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <msg> key=value ...`: the structured line every process logs."""

    def format(self, record: logging.LogRecord) -> str:
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"{at}.{int(record.msecs):03d}Z",
            record.levelname,
            record.name,
            record.getMessage(),
        ]
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# The global --cluster flag travels in ctx.meta under this key; cmd_up reads it
# (cli.cmd_up.CLUSTER_META is the same string, kept here so that no command
# module is imported before the verb is known).
CLUSTER_META = "tinykube.cluster"

# Every verb but `apiserver` (defined below): name -> (module, attribute, short
# help). The short help is what `tinykube --help` prints without importing the
# module; tests/unit/test_cli_lazy.py checks it against the command itself.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "apiserver": (
        "cli.cmd_apiserver",
        "apiserver",
        "Run the API server (with scheduler and controllers) in the foreground.",
    ),
    "api-resources": (
        "cli.cmd_get",
        "api_resources",
        "Print the supported API resources on the server.",
    ),
    "annotate": ("cli.cmd_label", "annotate", "Update the annotations on a resource."),
    "apply": (
        "cli.cmd_apply",
        "apply",
        "Apply a configuration to a resource by file name or stdin.",
    ),
    "auth": ("cli.cmd_auth", "auth", "Inspect authorization."),
    "certificate": ("cli.cmd_certificate", "certificate", "Approve or deny certificate requests."),
    "config": (
        "cli.cmd_config",
        "config_group",
        'Modify kubeconfig files using subcommands like "tinykube config use-context NAME".',
    ),
    "controller-manager": (
        "cli.cmd_controlplane",
        "controller_manager",
        "Run the controllers against the API server (--server) in the foreground.",
    ),
    "cordon": ("cli.cmd_node", "cordon", "Mark NODE as unschedulable."),
    "cp": ("cli.cmd_cp", "cp", "Copy files and directories to and from containers."),
    "create": (
        "cli.cmd_apply",
        "create",
        "Create a resource from a file or stdin, or a node / namespace by name.",
    ),
    "dashboard": ("cli.cmd_dashboard", "dashboard", "Serve a live web view of the cluster."),
    "delete": (
        "cli.cmd_apply",
        "delete",
        "Delete resources by file names, stdin, resources and names, or by selector.",
    ),
    "describe": (
        "cli.cmd_get",
        "describe_cmd",
        "Show details of a resource or group of resources.",
    ),
    "diff": ("cli.cmd_diff", "diff", "Diff the live version against a would-be applied version."),
    "down": (
        "cli.cmd_up",
        "down",
        "Stop every process of the cluster and remove its namespaces, mounts and files.",
    ),
    "drain": (
        "cli.cmd_node",
        "drain",
        "Drain NODE in preparation for maintenance: cordon it and evict its pods.",
    ),
    "edit": ("cli.cmd_edit", "edit", "Edit a resource on the server."),
    "exec": (
        "cli.cmd_logs",
        "exec_cmd",
        "Run a command in a container: tinykube exec [-i] [-t] POD [-c C] -- CMD [ARG...].",
    ),
    "expose": (
        "cli.cmd_expose",
        "expose",
        "Expose a deployment, service, replica set or pod as a new service.",
    ),
    "explain": (
        "cli.cmd_explain",
        "explain",
        "Get the documentation of a resource and its fields.",
    ),
    "explain-placement": (
        "cli.cmd_placement",
        "explain_placement",
        "Re-run the scheduler's filters and scores for a pod on today's cluster state.",
    ),
    "get": ("cli.cmd_get", "get", "Display one or many resources."),
    "join": ("cli.cmd_join", "join", "Check the cluster CA's pin; write a bootstrap kubeconfig."),
    "kubelet": (
        "cli.cmd_kubelet",
        "kubelet",
        "Run a kubelet for one node in the foreground.",
    ),
    "label": ("cli.cmd_label", "label", "Update the labels on a resource."),
    "logs": ("cli.cmd_logs", "logs", "Print the logs of a container in a pod."),
    "migrate-storage": (
        "cli.cmd_migrate",
        "migrate_storage",
        "Copy a stopped API server's SQLite store into an empty etcd cluster.",
    ),
    "netplugin": (
        "cli.cmd_netplugin",
        "netplugin",
        "Run the network agent for one node in the foreground.",
    ),
    "node": ("cli.cmd_render", "node", "Node-level tools: render a node's daemon configuration."),
    "node-shell": (
        "cli.cmd_up",
        "node_shell",
        "Run COMMAND (default: a shell) in NODE's network namespace; its exit code is ours.",
    ),
    "patch": (
        "cli.cmd_patch",
        "patch",
        "Update fields of a resource with a strategic, merge or JSON patch.",
    ),
    "pki": ("cli.cmd_pki", "pki", "Make the cluster's certificates and kubeconfig files."),
    "port-forward": (
        "cli.cmd_portforward",
        "port_forward",
        "Forward one or more local ports to a pod.",
    ),
    "replace": ("cli.cmd_replace", "replace", "Replace a resource by file name or stdin."),
    "rollout": ("cli.cmd_rollout", "rollout", "Manage the rollout of a deployment."),
    "run": (
        "cli.cmd_run",
        "run",
        "Create a pod running IMAGE: tinykube run NAME --image IMG [--rm -it] [-- ARGS...].",
    ),
    "scale": (
        "cli.cmd_rollout",
        "scale",
        "Set a new size for a deployment or replica set.",
    ),
    "scheduler": (
        "cli.cmd_placement",
        "scheduler",
        "Run the scheduler against the API server (--server) in the foreground.",
    ),
    "set": ("cli.cmd_rollout", "set_group", "Set specific features on objects."),
    "snapshot": (
        "cli.cmd_snapshot",
        "snapshot",
        "Save, check and restore snapshots of the cluster's store.",
    ),
    "status": (
        "cli.cmd_up",
        "status",
        "Show the cluster's processes and nodes; exit 1 when something is down.",
    ),
    "token": ("cli.cmd_token", "token", "Manage bootstrap tokens: create, list, delete."),
    "top": ("cli.cmd_top", "top", "Display resource (CPU/memory) usage."),
    "trace": (
        "cli.cmd_trace",
        "trace",
        "Show the causal timeline of a change: each step, its component and node, and why.",
    ),
    "uncordon": ("cli.cmd_node", "uncordon", "Mark NODE as schedulable again."),
    "up": (
        "cli.cmd_up",
        "up",
        "Create a cluster whose nodes are network namespaces on this host.",
    ),
    "version": (
        "cli.cmd_get",
        "version",
        "Print the client and server version information.",
    ),
    "wait": ("cli.cmd_wait", "wait", "Wait for a specific condition on one or many resources."),
}


class LazyGroup(click.Group):
    """A click group that imports a verb's module only when that verb runs.

    Each process runs one verb, so importing every command module up front
    costs every process -- the long-lived kubelet and netplugin included --
    the modules of all the others (YAML, tar and HTTP for the image registry,
    the table printers, ...). Here the module is imported in get_command, the
    one place click asks for a command object; `--help` lists the verbs from
    LAZY_COMMANDS without importing any of them.

    Example: `tinykube kubelet --node-name n1 ...` imports cli.main, then
    cli.cmd_kubelet alone; `tinykube --help` imports neither.
    """

    def __init__(
        self, *args: Any, lazy: dict[str, tuple[str, str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str, str]] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None or cmd_name not in self.lazy:
            return command
        module_name, attribute, _ = self.lazy[cmd_name]
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.{attribute} is not a click command")
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own layout, with the short help of unloaded verbs from the table."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=self.lazy[name][2])
            if not command.hidden:
                rows.append((name, command))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


@click.group(
    cls=LazyGroup,
    lazy=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--server",
    "-s",
    default=None,
    metavar="HOST:PORT",
    help="API server address (else $TINYKUBE_SERVER, the config file, 127.0.0.1:6443).",
)
@click.option(
    "-n", "--namespace", default=None, help="Namespace for the request (default: default)."
)
@click.option(
    "--cluster",
    default=None,
    metavar="NAME",
    help="A local cluster of `tinykube up` (else $TINYKUBE_CLUSTER, the most recent).",
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="PATH",
    help="A kubeconfig file: server, CA and credentials (else $KUBECONFIG, ~/.tinykube/config).",
)
@click.option(
    "--otlp-endpoint",
    default=None,
    metavar="URL",
    help="Also send this process's trace spans to an OpenTelemetry collector (OTLP/gRPC).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    server: str | None,
    namespace: str | None,
    cluster: str | None,
    kubeconfig: str | None,
    otlp_endpoint: str | None,
) -> None:
    """tinykube controls a tinykube cluster, as kubectl controls Kubernetes."""
    ctx.meta[CLUSTER_META] = cluster or ""
    if otlp_endpoint:  # the variable OpenTelemetry's exporter reads (apimachinery/tracing.py)
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    no_server = ("apiserver", "up", "down", "status", "node-shell", "pki", "config")
    if ctx.invoked_subcommand in no_server:
        return
    from cli import config
    from cli.context import resolve_options

    try:
        ctx.obj = resolve_options(server, namespace, cluster, kubeconfig)
    except config.ConfigError as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None


def main() -> None:
    """Console-script entry point (`tinykube = "cli.main:main"`)."""
    cli(prog_name="tinykube")


if __name__ == "__main__":
    main()
