"""`config view|current-context|get-contexts|use-context|set-context` (kubectl/pkg/cmd/config).

These read and edit the kubeconfig file itself, never the server, so `tinykube
config` runs even when the file names no usable context (the group callback in
cli.main skips resolving a server for it) -- that is when a user needs
`use-context` most. The file is the one kubectl's loading rules would pick,
in tinykube's order (cli.config): `--kubeconfig`, the first file of
$KUBECONFIG, $TINYKUBE_CONFIG, then ~/.tinykube/config. A missing file is an
empty config for reading, and is created (mode 0600) by a command that
writes.

    tinykube config view                 the file, secrets hidden:
                                         certificate data -> DATA+OMITTED,
                                         client keys, tokens, passwords -> REDACTED
    tinykube config view --raw           everything, as stored
    tinykube config view --minify        only the current context, its cluster and user
    tinykube config current-context      the name, or `error: current-context is not set`
    tinykube config get-contexts [NAME]  CURRENT NAME CLUSTER AUTHINFO NAMESPACE
    tinykube config use-context NAME     Switched to context "NAME".
    tinykube config set-context --current --namespace=dev
                                         Context "NAME" modified.

A rewrite keeps the file's leading comment lines (the marker `tinykube up`
puts there to recognise its own file) and its key order, and writes
atomically with mode 0600: the file holds private keys. The older
`server: HOST:PORT` file is not a kubeconfig; these commands say so.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from apimachinery import certs, kubeconfig
from cli import config, tabwriter
from cli.context import CommandError, echo_err

OMITTED = "DATA+OMITTED"
REDACTED = "REDACTED"
SECTIONS = (("clusters", "cluster"), ("contexts", "context"), ("users", "user"))


def config_path(flag: str | None) -> Path:
    """The kubeconfig these commands read and write (see the module docstring)."""
    if flag:
        return Path(flag).expanduser()
    from_env = config.kubeconfig_env_path(os.environ)
    if from_env is not None:
        return from_env
    return config.default_config_path()[0]


def empty_config() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "clusters": None,
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": None,
    }


def load(path: Path) -> tuple[dict[str, Any], str]:
    """(the document, its leading comment lines); an empty config when the file is absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty_config(), ""
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CommandError(f"kubeconfig {path}: not valid YAML: {err}") from None
    header = "".join(line for line in _leading_comments(text))
    if data is None:
        return empty_config(), header
    if not isinstance(data, dict):
        raise CommandError(f"kubeconfig {path}: not a YAML mapping")
    if not any(key in data for key in config.KUBECONFIG_KEYS):
        raise CommandError(f"{path} is not a kubeconfig (it names only a server)")
    for section, _ in SECTIONS:
        items = data.get(section)
        if items is not None and not (
            isinstance(items, list) and all(isinstance(i, dict) for i in items)
        ):
            raise CommandError(f"kubeconfig {path}: {section} must be a list of named entries")
    return data, header


def _leading_comments(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        out.append(line)
    return out


def save(path: Path, data: dict[str, Any], header: str) -> None:
    certs.write_file(path, (header + kubeconfig.dumps(data)).encode(), mode=0o600)


def entries(data: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return [e for e in data.get(section) or [] if isinstance(e, dict)]


def find(data: dict[str, Any], section: str, name: str) -> dict[str, Any] | None:
    return next((e for e in entries(data, section) if e.get("name") == name), None)


def redact(data: dict[str, Any]) -> dict[str, Any]:
    """client-go's ShortenConfig: certificates omitted, keys and tokens redacted."""
    out = copy.deepcopy(data)
    for entry in entries(out, "clusters"):
        cluster = entry.get("cluster") or {}
        if cluster.get("certificate-authority-data"):
            cluster["certificate-authority-data"] = OMITTED
    for entry in entries(out, "users"):
        user = entry.get("user") or {}
        if user.get("client-certificate-data"):
            user["client-certificate-data"] = OMITTED
        for key in ("client-key-data", "token", "password"):
            if user.get(key):
                user[key] = REDACTED
    return out


def minify(data: dict[str, Any]) -> dict[str, Any]:
    """Only the current context, with its cluster and user."""
    name = data.get("current-context") or ""
    context = find(data, "contexts", name) if name else None
    if context is None:
        raise CommandError("current-context must exist in order to minify")
    body = context.get("context") or {}
    out = {k: v for k, v in data.items() if k not in ("clusters", "contexts", "users")}
    out["contexts"] = [context]
    cluster = find(data, "clusters", body.get("cluster", ""))
    user = find(data, "users", body.get("user", ""))
    out["clusters"] = [cluster] if cluster is not None else None
    out["users"] = [user] if user is not None else None
    return out


def root_flag(ctx: click.Context) -> str | None:
    """The global `--kubeconfig` given before the verb."""
    value = ctx.find_root().params.get("kubeconfig")
    return value if isinstance(value, str) and value else None


def fail(err: CommandError) -> NoReturn:
    echo_err(f"error: {err}")
    raise click.exceptions.Exit(1)


def flatten(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Files a kubeconfig names (certificate-authority, client-certificate, client-key)
    embedded as their `-data` forms, so the output stands alone."""
    import base64

    out = copy.deepcopy(data)
    pairs = (
        ("clusters", "cluster", "certificate-authority"),
        ("users", "user", "client-certificate"),
        ("users", "user", "client-key"),
    )
    for section, key, field in pairs:
        for entry in entries(out, section):
            body = entry.get(key) or {}
            path = body.get(field)
            if not isinstance(path, str) or not path:
                continue
            try:
                raw = (base / path).expanduser().read_bytes()
            except OSError as err:
                raise CommandError(f"cannot read {path}: {err.strerror or err}") from None
            body[f"{field}-data"] = base64.b64encode(raw).decode("ascii")
            del body[field]
    return out


@click.group("config")
def config_group() -> None:
    """Modify kubeconfig files using subcommands like "tinykube config use-context NAME"."""


@config_group.command("view")
@click.option("--raw", is_flag=True, help="Show certificates, keys and tokens as stored.")
@click.option("--minify", "minified", is_flag=True, help="Only the current context's parts.")
@click.option("--flatten", "flat", is_flag=True, help="Embed the files the config names.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
@click.pass_context
def view(ctx: click.Context, raw: bool, minified: bool, flat: bool, output: str) -> None:
    """Display merged kubeconfig settings or a specified kubeconfig file."""
    path = config_path(root_flag(ctx))
    try:
        data, _ = load(path)
        if minified:
            data = minify(data)
        if flat:
            data = flatten(data, path.parent)
    except CommandError as err:
        fail(err)
    shown = data if raw else redact(data)
    if output == "json":
        click.echo(json.dumps(shown, indent=4, sort_keys=True))
    else:
        click.echo(yaml.safe_dump(shown, sort_keys=True, default_flow_style=False), nl=False)


@config_group.command("current-context")
@click.pass_context
def current_context(ctx: click.Context) -> None:
    """Display the current-context."""
    try:
        data, _ = load(config_path(root_flag(ctx)))
    except CommandError as err:
        fail(err)
    name = data.get("current-context") or ""
    if not name:
        fail(CommandError("current-context is not set"))
    click.echo(name)


@config_group.command("get-contexts")
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Choice(["name"]), default=None)
@click.option("--no-headers", is_flag=True, help="Print no header row.")
@click.pass_context
def get_contexts(
    ctx: click.Context, name: str | None, output: str | None, no_headers: bool
) -> None:
    """Describe one or many contexts."""
    try:
        data, _ = load(config_path(root_flag(ctx)))
    except CommandError as err:
        fail(err)
    contexts = sorted(entries(data, "contexts"), key=lambda e: str(e.get("name", "")))
    if name is not None:
        contexts = [e for e in contexts if e.get("name") == name]
        if not contexts:
            fail(CommandError(f"context {name} not found"))
    if output == "name":
        for entry in contexts:
            click.echo(entry.get("name", ""))
        return
    current = data.get("current-context") or ""
    rows = [] if no_headers else ["CURRENT\tNAME\tCLUSTER\tAUTHINFO\tNAMESPACE"]
    for entry in contexts:
        body = entry.get("context") or {}
        cells = [
            "*" if entry.get("name") == current else "",
            str(entry.get("name", "")),
            str(body.get("cluster", "")),
            str(body.get("user", "")),
            str(body.get("namespace", "")),
        ]
        rows.append("\t".join(cells))
    for line in tabwriter.align(rows, min_width=10, padding=3):
        click.echo(line)


@config_group.command("use-context")
@click.argument("name")
@click.pass_context
def use_context(ctx: click.Context, name: str) -> None:
    """Set the current-context in a kubeconfig file."""
    path = config_path(root_flag(ctx))
    try:
        data, header = load(path)
        if find(data, "contexts", name) is None:
            raise CommandError(f'no context exists with the name: "{name}"')
        data["current-context"] = name
        save(path, data, header)
    except CommandError as err:
        fail(err)
    click.echo(f'Switched to context "{name}".')


config_group.add_command(use_context, "use")


@config_group.command("set-context")
@click.argument("name", required=False)
@click.option("--current", is_flag=True, help="Change the current context.")
@click.option("--namespace", default=None, help="The context's default namespace.")
@click.option("--cluster", default=None, help="The context's cluster.")
@click.option("--user", default=None, help="The context's user.")
@click.pass_context
def set_context(
    ctx: click.Context,
    name: str | None,
    current: bool,
    namespace: str | None,
    cluster: str | None,
    user: str | None,
) -> None:
    """Set a context entry in kubeconfig."""
    path = config_path(root_flag(ctx))
    try:
        data, header = load(path)
        if current == bool(name):
            raise CommandError("you must specify a context name or --current")
        name = name or str(data.get("current-context") or "")
        if not name:
            raise CommandError("no current context is set")
        entry = find(data, "contexts", name)
        created = entry is None
        if entry is None:
            entry = {"name": name, "context": {}}
            data["contexts"] = [*entries(data, "contexts"), entry]
        body = entry.setdefault("context", {}) or {}
        entry["context"] = body
        for key, value in (("namespace", namespace), ("cluster", cluster), ("user", user)):
            if value is not None:
                body[key] = value
        save(path, data, header)
    except CommandError as err:
        fail(err)
    click.echo(f'Context "{name}" {"created" if created else "modified"}.')
