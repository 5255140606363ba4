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

And two bounds, so that a hostile manifest costs milliseconds, not the
server's memory (the YAML library under Kubernetes has the same two):

* aliases: `*name` reuses a node, so nine lines of nine aliases each can
  stand for 9^9 (387 million) strings -- the "billion laughs". PyYAML
  builds them as shared references, cheaply, but everything after it (the
  codec, an error message) walks the expanded tree. So each document's node
  tree is measured as it would be expanded (memoised per node, so the count
  itself is cheap), and more than MAX_EXPANDED_NODES is refused: `yaml:
  document contains excessive aliasing`.
* depth: PyYAML's composer recurses once per level; a document nested
  deeper than Python's stack is refused as `yaml: exceeded max depth`
  instead of crashing the reader with a RecursionError.

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


# A real manifest has a few hundred nodes; a big ConfigMap a few thousand.
MAX_EXPANDED_NODES = 100_000


class LimitExceeded(yaml.YAMLError):
    """A document over one of the bounds above (a YAMLError, so it is reported like one)."""


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many nodes `root` stands for with every alias expanded; LimitExceeded over `limit`.

    A node reached through several aliases is the same object each time, so
    its size is computed once (by id) and added as often as it is used.
    Iterative (post-order), so a deep tree does not recurse."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = _children(node)
        if not children_done and kids:
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if id(kid) not in sizes)
            continue
        size = 1 + sum(sizes[id(kid)] for kid in kids)
        if size > limit:
            raise LimitExceeded("yaml: document contains excessive aliasing")
        sizes[id(node)] = size
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def iter_documents(text: str) -> Iterator[tuple[yaml.Node | None, Any]]:
    """Each document as (node tree, data); an empty document is (None, None).

    Raises yaml.YAMLError (usually a MarkedYAMLError) on a syntax error, and
    LimitExceeded for a document over the alias or depth bounds.
    """
    loader = Loader(text)
    try:
        while loader.check_node():
            try:
                node = loader.get_node()
                if node is not None:
                    expanded_size(node)
                data = loader.construct_document(node) if node is not None else None
            except RecursionError:
                raise LimitExceeded(
                    "yaml: exceeded max depth (the document nests too deeply)"
                ) from None
            yield node, data
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """One document's data, within the bounds (yaml.safe_load's role, for untrusted text).

    Raises yaml.YAMLError on a syntax error, a second document, or a bound."""
    documents = list(iter_documents(text))
    if len(documents) > 1:
        raise yaml.YAMLError("expected a single document in the stream")
    return documents[0][1] if documents else None


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
