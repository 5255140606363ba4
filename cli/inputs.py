"""What the user pointed at: `-f` sources and `KIND NAME` arguments.

Two small parsers, kept apart from the verbs so they can be tested without a
server (kubectl keeps both in cli-runtime's resource.Builder).

`-f` sources (`read_sources`, `decode_all`):

- a file is read as is; `-` is stdin (read once, even if given twice);
- a directory contributes its `*.yaml`, `*.yml` and `*.json` files, sorted
  by name, not recursing (kubectl's default without `-R`);
- a path that does not exist is `error: the path "x" does not exist`.

Decoding is all-or-nothing: every document of every source is decoded
*before* anything is sent, so a typo in the fifth document of a directory
leaves the cluster untouched instead of half-applied. `decode_all` returns
the objects and every decode error found (each names its file and
document), so one run reports all of them.

Resource arguments (`parse_resource_args`), as kubectl accepts them:

    get pods                    [(pods, [])]
    get pods web db             [(pods, [web, db])]
    get deploy,svc              [(deployments, []), (services, [])]
    get deploy,svc web-app      [(deployments, [web-app]), (services, [web-app])]
    get deploy/web svc/web      [(deployments, [web]), (services, [web])]
    get all                     pods, services, deployments, replicasets (kubectl's category)

Mixing the two forms (`get pods pod/web`) is an error with kubectl's
explanation, and so is an unknown type (`the server doesn't have a
resource type "pdos"`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from apimachinery import errors, scheme
from cli.context import CommandError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# kubectl's "all" category, restricted to the kinds tinykube has, in kubectl's order.
ALL_CATEGORY = ("pods", "services", "deployments", "replicasets")


@dataclass(frozen=True)
class Source:
    """One manifest text and where it came from (a path, or "-" for stdin)."""

    name: str
    text: str


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files to read, in order: directories expand to their manifests, sorted."""
    out: list[str] = []
    for raw in paths:
        if raw == "-":
            out.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            out.extend(
                str(p)
                for p in sorted(path.iterdir())
                if p.is_file() and p.suffix in MANIFEST_SUFFIXES
            )
        elif path.exists():
            out.append(raw)
        else:
            raise CommandError(f'the path "{raw}" does not exist')
    return out


def read_sources(paths: Iterable[str], stdin: TextIO | None = None) -> list[Source]:
    """Every `-f` argument read into memory (stdin at most once)."""
    sources: list[Source] = []
    stdin_done = False
    for name in expand_paths(paths):
        if name == "-":
            if stdin_done:
                continue
            stdin_done = True
            sources.append(Source("-", (stdin or sys.stdin).read()))
            continue
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"error reading {name}: {exc}") from None
        sources.append(Source(name, text))
    return sources


def decode_all(sources: Sequence[Source]) -> tuple[list[Any], list[errors.StatusError]]:
    """Decode every document of every source; (objects, errors) -- send only if no errors."""
    from apimachinery import codec

    objs: list[Any] = []
    problems: list[errors.StatusError] = []
    for src in sources:
        try:
            objs.extend(codec.decode_documents(src.text, src.name))
        except errors.StatusError as err:
            problems.append(err)
    return objs, problems


def objects_in_files(
    filenames: Sequence[str], namespace: str
) -> list[tuple[scheme.KindInfo, str, str]]:
    """(kind, name, namespace) of every object in `-f` files: what `patch -f`, `label -f` change.

    Only the identity is taken from the file (kubectl's resource.Builder does
    the same for these verbs); an object without a namespace is in the
    command's namespace. Decode errors are reported together, as for apply."""
    objs, problems = decode_all(read_sources(filenames))
    if problems:
        raise CommandError("\n".join(p.message for p in problems))
    found: list[tuple[scheme.KindInfo, str, str]] = []
    for obj in objs:
        info = scheme.for_message(obj)
        if not obj.metadata.name:
            raise CommandError(f"a {info.kind} in the file has no metadata.name")
        ns = (obj.metadata.namespace or namespace) if info.namespaced else ""
        found.append((info, obj.metadata.name, ns))
    if not found:
        raise CommandError("no objects passed to the command")
    return found


def kind_for(word: str) -> scheme.KindInfo:
    """The kind a user typed (`po`, `deployments.apps`), or a CommandError in kubectl's words."""
    try:
        return scheme.for_resource(word)
    except errors.StatusError as err:
        raise CommandError(err.message) from None


def parse_resource_args(
    args: Sequence[str], *, verb: str = "get", need_names: bool = False
) -> list[tuple[scheme.KindInfo, list[str]]]:
    """`KIND[,KIND] [NAME...]` or `KIND/NAME...` -> [(kind, names)] (see module docstring)."""
    if not args:
        raise CommandError(
            f"you must specify the type of resource to {verb}. "
            'Use "tinykube api-resources" for a complete list of supported resources.'
        )
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise CommandError(
                "there is no need to specify a resource type as a separate argument when "
                "passing arguments in resource/name form (e.g. "
                f"'tinykube {verb} resource/<resource_name>' instead of "
                f"'tinykube {verb} resource resource/<resource_name>')"
            )
        grouped: dict[str, tuple[scheme.KindInfo, list[str]]] = {}
        for arg in args:
            kind_word, _, obj_name = arg.partition("/")
            if not kind_word or not obj_name or "/" in obj_name:
                raise CommandError(
                    f'arguments in resource/name form must have a single resource and name: "{arg}"'
                )
            info = kind_for(kind_word)
            grouped.setdefault(info.kind, (info, []))[1].append(obj_name)
        return list(grouped.values())
    kinds: list[scheme.KindInfo] = []
    for word in args[0].split(","):
        for each in ALL_CATEGORY if word == "all" else (word,) if word else ():
            info = kind_for(each)
            if info not in kinds:
                kinds.append(info)
    if not kinds:
        raise CommandError(f'invalid resource type "{args[0]}"')
    names = list(args[1:])
    if need_names and not names:
        raise CommandError(f"resource(s) were provided, but no name was specified for {verb}")
    return [(info, list(names)) for info in kinds]
