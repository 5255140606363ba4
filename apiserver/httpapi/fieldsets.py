"""Field sets: which fields of an object a configuration sets, as server-side apply counts them.

Server-side apply remembers, per field manager, the set of fields that
manager last set (Kubernetes' managedFields, in the structured-merge-diff
"FieldsV1" form). A field is a path from the object's root:

    ("f:spec", "f:replicas")                                      a scalar
    ("f:metadata", "f:labels", "f:app")                           one key of a map
    ("f:spec", "f:template", "f:spec", "f:containers",
     'k:{"name":"web"}', "f:image")                               a field of one list item,
                                                                  the item named by its merge key
    ("f:metadata", "f:finalizers", 'v:"example.com/x"')           one value of a set-like list
    ("f:spec", "f:template", "f:spec", "f:tolerations")           an atomic list, whole

A keyed list item also counts as a field of its own (its path ends at the
`k:` step), so a manager that applied the item owns its existence. Which
lists are keyed, and by what, is patch.py's merge key table, the same
knowledge strategic merge patch uses.

FieldsV1 is the nested-object spelling of a set, one key per step and `.`
for "this node itself":

    {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers":
        {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}

`render` prints a path as Kubernetes' conflict messages do:
`.spec.template.spec.containers[name="web"].image`.
"""

from __future__ import annotations

import json
from typing import Any

from apimachinery import patch

Path = tuple[str, ...]
# Fields no manager owns: identity and what the server keeps (status is applied apart).
UNOWNED_TOP = ("apiVersion", "kind", "status")
UNOWNED_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
)


def leaves(data: Any, path: Path = (), names: tuple[str, ...] = ()) -> set[Path]:
    """The fields `data` (an object's JSON, or an apply configuration) sets."""
    out: set[Path] = set()
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        if value is None:
            continue
        if not path and key in UNOWNED_TOP:
            continue
        if path == ("f:metadata",) and key in UNOWNED_META:
            continue
        here = (*path, f"f:{key}")
        if isinstance(value, dict) and value:
            out |= leaves(value, here, (*names, key))
        elif isinstance(value, list):
            out |= _list_leaves(value, here, names, key)
        else:
            out.add(here)
    return out


def _list_leaves(items: list[Any], here: Path, names: tuple[str, ...], key: str) -> set[Path]:
    merge = patch.merge_key(names, key)
    if merge is not None and all(isinstance(i, dict) and merge in i for i in items) and items:
        out: set[Path] = set()
        for item in items:
            step = f"k:{json.dumps({merge: item[merge]}, separators=(',', ':'))}"
            out.add((*here, step))
            out |= leaves(item, (*here, step), (*names, key))
        return out
    if key in patch.PRIMITIVE_MERGE:
        return {(*here, f"v:{json.dumps(v)}") for v in items}
    return {here}


def _child(node: Any, step: str) -> tuple[bool, Any]:
    kind, _, rest = step.partition(":")
    if kind == "f" and isinstance(node, dict):
        return (rest in node), node.get(rest)
    if kind == "k" and isinstance(node, list):
        wanted = json.loads(rest)
        for item in node:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
                return True, item
        return False, None
    if kind == "v" and isinstance(node, list):
        value = json.loads(rest)
        return (value in node), value
    return False, None


def value_at(data: Any, path: Path) -> tuple[bool, Any]:
    """(whether `data` has the field at `path`, its value)."""
    node = data
    for step in path:
        found, node = _child(node, step)
        if not found:
            return False, None
    return True, node


def remove(data: Any, path: Path) -> None:
    """Remove the field at `path` from `data` (in place); nothing when it is not there."""
    if not path:
        return
    found, parent = value_at(data, path[:-1])
    if not found:
        return
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        wanted = json.loads(rest)
        parent[:] = [
            i
            for i in parent
            if not (isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items()))
        ]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [i for i in parent if i != value]


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for step in path:
            node = node.setdefault(step, {})
        if path and path[-1].startswith("k:"):
            node.setdefault(".", {})
    return tree


def from_fields_v1(tree: Any, path: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for step, sub in tree.items():
        if step == ".":
            out.add(path)
        elif isinstance(sub, dict) and sub:
            out |= from_fields_v1(sub, (*path, step))
        else:
            out.add((*path, step))
    return out


def render(path: Path) -> str:
    """`.spec.template.spec.containers[name="web"].image`, as conflict messages print it."""
    out = ""
    for step in path:
        kind, _, rest = step.partition(":")
        if kind == "f":
            out += f".{rest}"
        elif kind == "k":
            pairs = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in pairs.items()) + "]"
        else:
            out += f"[={rest}]"
    return out
