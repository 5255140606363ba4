"""Documentation from the .proto sources: each message's and field's comment.

Kubernetes documents its API in the Go types' comments, and both `kubectl
explain` and the OpenAPI documents carry that text. tinykube's types are
protobuf messages documented in protos/*.proto; the generated modules keep
the descriptors (names, types, JSON names) but not the comments. So this
module reads the .proto source named by a descriptor's file (its path is
relative to the repository) and keeps, for each message and field, the `//`
lines just above it and a comment at the end of its line:

    // How a Deployment replaces its pods.          <- the message's text
    message DeploymentStrategy {
      // RollingUpdate (the default) or Recreate.   <- the field's text
      string type = 1;
      RollingUpdateDeployment rolling_update = 2;  // with type RollingUpdate

A section rule (`// ---- Pods`) documents nothing, and a comment separated
from the declaration by a blank line does not belong to it. Nested messages
are named `outer.Inner`; `oneof` and `enum` blocks do not own fields. A
missing .proto file (an installed wheel without sources) only loses text.

Two readers use it, so both explains print the same text: `tinykube
explain` (cli/cmd_explain.py) and the OpenAPI documents that real `kubectl
explain` reads (apiserver/httpapi/openapi.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
_BANNER = re.compile(r"^[-=*#]{4,}")
_FIELD = re.compile(r"^(?:repeated\s+|optional\s+)?(map\s*<[^>]*>|[\w.]+)\s+(\w+)\s*=\s*\d+")


@dataclass
class MessageDoc:
    """A message's comment and its fields' comments (by proto field name)."""

    text: str = ""
    fields: dict[str, str] = field(default_factory=dict)


def parse_proto_comments(source: str, package: str) -> dict[str, MessageDoc]:
    """Full message name -> its comment and its fields' comments, from .proto text."""
    docs: dict[str, MessageDoc] = {}
    stack: list[str | None] = []  # message names; None for other blocks (oneof, enum...)
    pending: list[str] = []
    for raw in source.splitlines():
        code, _, comment = raw.partition("//")
        comment = comment.strip()
        if _BANNER.match(comment):  # a section rule (// ----- Pod) documents nothing
            comment = ""
        if not code.strip():
            pending = [*pending, comment] if comment else []
            continue
        pieces = re.findall(r"([^{};]*)([{};])", code)
        for index, (stmt, end) in enumerate(pieces):
            words = stmt.split()
            trailing = [comment] if comment and index == 0 else []  # the line's first declaration
            if end == "{":
                if len(words) >= 2 and words[0] == "message":
                    names = [n for n in stack if n is not None]
                    full = f"{names[-1]}.{words[1]}" if names else f"{package}.{words[1]}"
                    docs[full] = MessageDoc(" ".join(pending + trailing))
                    stack.append(full)
                else:
                    stack.append(None)
            elif end == "}":
                if stack:
                    stack.pop()
            else:
                owner = next((n for n in reversed(stack) if n is not None), None)
                match = _FIELD.match(stmt.strip())
                if owner is not None and match is not None:
                    docs[owner].fields[match.group(2)] = " ".join(pending + trailing)
            pending = []
    return docs


@functools.cache
def _file_docs(file_name: str, package: str) -> dict[str, MessageDoc]:
    path = REPO_ROOT / file_name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    return parse_proto_comments(text, package)


def message_doc(descriptor: Any) -> MessageDoc:
    docs = _file_docs(descriptor.file.name, descriptor.file.package)
    return docs.get(descriptor.full_name, MessageDoc())


def field_text(owner: Any, fd: Any) -> str:
    """The comment of field `fd` of message descriptor `owner` ("" if none)."""
    return message_doc(owner).fields.get(fd.name, "")
