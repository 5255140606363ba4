"""YAML reading and writing for the codec: documents with their source lines.

Why not `yaml.safe_load_all`: the codec wants to say *where* a problem is.
A syntax error already carries a mark (`yaml.MarkedYAMLError.problem_mark`),
but a schema error ("unknown field spec.replicass") is found later, on plain
Python data that has forgotten its lines. So each document is read twice
over the same parse: `Loader.get_node()` gives the node tree (every node has
a `start_mark`), `construct_document(node)` gives the data. When the codec
fails on a path such as ["spec", "template", "spec", "containers", 0,
"imagee"], `line_of(node, path)` walks the node tree along the same keys and
indices and returns the 1-based line of the offending key.

Two deliberate differences from PyYAML's SafeLoader:

* no implicit timestamps. PyYAML turns `2024-05-01` into a `datetime.date`;
  Kubernetes (which converts YAML to JSON first) keeps it a string, and so
  do we, so a label value `2024-05-01` is valid and an unquoted
  `creationTimestamp: 2024-05-01T00:00:00Z` parses as the RFC 3339 text it is.
* duplicate keys are errors (PyYAML silently keeps the last one; Kubernetes'
  strict decoding rejects them: `mapping key "name" already defined`).

Output uses a SafeDumper that keeps key order (the codec emits fields in
Kubernetes' order) and prints multi-line strings as `|` blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import yaml


class Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps and with duplicate-key errors."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable keys are reported by the base class
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f'mapping key "{key}" already defined',
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def iter_documents(text: str) -> Iterator[tuple[yaml.Node | None, Any]]:
    """Each document as (node tree, data); an empty document is (None, None).

    Raises yaml.YAMLError (usually a MarkedYAMLError) on a syntax error.
    """
    loader = Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node) if node is not None else None
            yield node, data
    finally:
        loader.dispose()


def line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node that `path` reaches in `node`."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == step:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if not 0 <= step < len(node.value):
                return line
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def mark_line(err: yaml.YAMLError) -> int | None:
    """The 1-based line a YAML syntax error points at, when it has a mark."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        if mark is not None:
            return int(mark.line) + 1
    return None


class Dumper(yaml.SafeDumper):
    """SafeDumper that prints multi-line strings as literal blocks."""


_UNICODE_BREAKS = frozenset("\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if _UNICODE_BREAKS.intersection(data):
        # YAML folds these line breaks inside plain and single-quoted scalars;
        # only the double-quoted style keeps them (as escapes).
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


Dumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """YAML text for plain data, keys in the order given."""
    return str(
        yaml.dump(
            data, Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
        )
    )
