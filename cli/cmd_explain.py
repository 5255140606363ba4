"""`explain TYPE[.field.path]` (kubectl/pkg/cmd/explain): the documentation of a kind's fields.

    $ tinykube explain pods.spec.containers.ports
    KIND:       Pod
    VERSION:    v1

    FIELD: ports <[]ContainerPort>

    DESCRIPTION:
        Ports the container listens on. Informational, except a hostPort, which
        the node forwards to it; a Service's targetPort may name one.

    FIELDS:
      name	<string>
        A name for the port (at most 15 characters, lowercase letters, digits
        and -), unique in the container; a Service's targetPort can refer to it.
    ...

kubectl reads the server's OpenAPI document, whose descriptions come from
the comments on Kubernetes' Go types. tinykube's types are protobuf
messages, and their comments are in protos/*.proto; apimachinery/protodocs.py
reads them from the .proto sources (the generated modules drop comments).
A field without a comment is described as <empty>, as kubectl does.

Types are shown in kubectl's words: <string>, <integer>, <boolean>,
<number>, <[]Container>, <map[string]string>, <Object type name>; a
Timestamp is a <string> (RFC 3339 in JSON) and an IntOrString is
<IntOrString>. The path walks JSON names (`containerPort`, not
`container_port`); a list or a map of messages is walked into its item
type. `--recursive` prints the field tree without descriptions.

Errors: an unknown type is `the server doesn't have a resource type "x"`,
an unknown field `field "x" does not exist`; both exit 1.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import click

from apimachinery import errors, scheme
from apimachinery.protodocs import field_text, message_doc
from cli.context import CommandError, echo_err

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMESTAMP = "google.protobuf.Timestamp"
INT_OR_STRING = "tinykube.meta.IntOrString"
EMPTY = "<empty>"
WIDTH = 80

# The fields every kind has; their meaning is the API's, not any one message's.
COMMON = {
    "apiVersion": "The versioned schema of this representation of an object, e.g. apps/v1. "
    "Servers convert recognized schemas to the latest internal value.",
    "kind": "The REST resource this object represents, in CamelCase, e.g. Deployment. "
    "Servers infer it from the endpoint the client submits requests to.",
    "metadata": "Standard object's metadata: name, namespace, labels, annotations, "
    "and what the server records (uid, resourceVersion, creationTimestamp).",
    "spec": "The desired state of the object, as its owner declares it.",
    "status": "The most recently observed state of the object, written by the system. "
    "Read-only for clients.",
}


def field_doc(owner: Any, fd: Any) -> str:
    text = field_text(owner, fd)
    if not text and fd.json_name in COMMON and owner.fields_by_name.get("kind") is not None:
        return COMMON[fd.json_name]
    return text


def is_map(fd: Any) -> bool:
    return bool(fd.message_type is not None and fd.message_type.GetOptions().map_entry)


def type_name(fd: Any) -> str:
    """kubectl's <type> for a field."""
    if is_map(fd):
        value = fd.message_type.fields_by_name["value"]
        return f"map[string]{type_name(value)}"
    inner = _scalar_or_message(fd)
    return f"[]{inner}" if fd.is_repeated else inner


def _scalar_or_message(fd: Any) -> str:
    if fd.message_type is not None:
        full = fd.message_type.full_name
        if full == TIMESTAMP:
            return "string"
        return "IntOrString" if full == INT_OR_STRING else fd.message_type.name
    if fd.enum_type is not None or fd.type in (fd.TYPE_STRING, fd.TYPE_BYTES):
        return "string"
    if fd.type == fd.TYPE_BOOL:
        return "boolean"
    if fd.type in (fd.TYPE_DOUBLE, fd.TYPE_FLOAT):
        return "number"
    return "integer"


def walkable(fd: Any) -> Any | None:
    """The message a path can go on into from this field (a list's or map's item type too)."""
    if is_map(fd):
        fd = fd.message_type.fields_by_name["value"]
    target = fd.message_type
    if target is None or target.full_name in (TIMESTAMP, INT_OR_STRING):
        return None
    return target


def resolve(arg: str) -> tuple[scheme.KindInfo, list[str]]:
    """`pods.spec.containers` -> (Pod, ["spec", "containers"]); `deployments.apps.spec` too."""
    tokens = arg.split(".")
    for cut in range(len(tokens), 0, -1):
        try:
            return scheme.for_resource(".".join(tokens[:cut])), tokens[cut:]
        except errors.StatusError:  # no kind by that word: try a shorter prefix
            continue
    raise CommandError(f'the server doesn\'t have a resource type "{tokens[0]}"')


def walk(info: scheme.KindInfo, path: list[str]) -> tuple[Any, Any | None, Any | None]:
    """(owner message, field or None for the kind itself, the message to list fields of)."""
    message: Any = info.message.DESCRIPTOR
    owner, fd = message, None
    for step in path:
        if message is None:
            raise CommandError(f'field "{step}" does not exist')
        found = next((f for f in message.fields if f.json_name == step), None)
        if found is None:
            raise CommandError(f'field "{step}" does not exist')
        owner, fd = message, found
        message = walkable(found)
    return owner, fd, message


def indented(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(
        text or EMPTY,
        WIDTH - indent,
        initial_indent=pad,
        subsequent_indent=pad,
        break_on_hyphens=False,
    )


def render(info: scheme.KindInfo, path: list[str], recursive: bool) -> str:
    owner, fd, message = walk(info, path)
    lines = [f"KIND:       {info.kind}", f"VERSION:    {info.api_version}", ""]
    if fd is not None:
        lines += [f"FIELD: {fd.json_name} <{type_name(fd)}>", ""]
        description = field_doc(owner, fd)
        if message is not None and not description:
            description = message_doc(message).text
    else:
        description = message_doc(message).text
    lines += ["DESCRIPTION:", *indented(description, 4), ""]
    if message is not None and message.fields:
        lines.append("FIELDS:")
        if recursive:
            lines += tree(message, 1, (message.full_name,))
        else:
            for child in message.fields:
                lines.append(f"  {child.json_name}\t<{type_name(child)}>")
                lines += indented(field_doc(message, child), 4)
                lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def tree(message: Any, depth: int, seen: tuple[str, ...]) -> list[str]:
    """`--recursive`: every field, nested fields indented under theirs (no cycles)."""
    out: list[str] = []
    for child in message.fields:
        out.append(f"{'  ' * depth}{child.json_name}\t<{type_name(child)}>")
        inner = walkable(child)
        if inner is not None and inner.full_name not in seen:
            out += tree(inner, depth + 1, (*seen, inner.full_name))
    return out


@click.command("explain")
@click.argument("resource")
@click.option("--recursive", is_flag=True, help="Print the fields of fields, without descriptions.")
def explain(resource: str, recursive: bool) -> None:
    """Get the documentation of a resource and its fields."""
    try:
        info, path = resolve(resource)
        text = render(info, path, recursive)
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    click.echo(text, nl=False)
