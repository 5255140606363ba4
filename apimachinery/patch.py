"""The three patch formats of Kubernetes, applied to an object's JSON form.

`kubectl patch` (and the API's PATCH verb) changes part of an object by
sending a patch instead of the whole object. Kubernetes accepts three kinds,
chosen by the request's Content-Type; all three work on the JSON form of the
object (here: the dict of codec.to_dict), never on the typed message:

* JSON merge patch (RFC 7386, `--type merge`): the patch is a partial
  object. Maps merge key by key, `null` deletes a key, and anything else --
  lists included -- replaces what was there. Simple, but a list cannot be
  changed one item at a time.

* JSON patch (RFC 6902, `--type json`): a list of operations, each naming
  its target with a JSON pointer (RFC 6901: `/spec/containers/0/image`;
  `~1` stands for `/` and `~0` for `~` inside a key, `-` is past the end of
  a list): `add`, `remove`, `replace`, `move`, `copy` and `test`. The
  operations apply in order and all-or-nothing: one that does not apply
  fails the whole patch and the object is left as it was.

* Strategic merge patch (`--type strategic`, kubectl's default): a merge
  patch that knows, for the lists the API declares mergeable, which field
  identifies an item (Go's `patchMergeKey` struct tag). A patch list then
  merges into the live list item by item instead of replacing it:

      live:   containers: [{name: web, image: nginx:1.24}, {name: log, image: busybox}]
      patch:  containers: [{name: web, image: nginx:1.25}]
      result: containers: [{name: web, image: nginx:1.25}, {name: log, image: busybox}]

  With JSON merge patch the same patch would leave one container. Directives
  steer the merge: `$patch: delete` in a list item removes the item with
  that key, `$patch: replace` in a map or as a list item replaces the map
  or list whole, `$retainKeys` keeps only the keys listed,
  `$deleteFromPrimitiveList/<field>` removes values from a list of strings,
  `$setElementOrder/<field>` orders the merged list as kubectl apply sends
  it. Lists without a merge key (tolerations, args, command, taints) are
  replaced, as in Kubernetes. The merge keys live in `MERGE_KEYS`: our
  protos carry no struct tags, so this table is the one place that says
  which list merges how.

Everything here is pure -- dicts in, dicts out, nothing read or written --
so the API server can use the same functions for a PATCH verb. Every failure
is a `PatchError` (a BadRequest) whose text says what did not apply, e.g.

    jsonpatch remove operation does not apply: doc is missing path: "/spec/replicaz"
    map: {'image': 'x'} does not contain declared merge key: name
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import yaml

from apimachinery import errors, yamlio

PATCH_TYPES = ("json", "merge", "strategic")

# The patchMergeKey of the lists that merge, by the list's JSON field name. `ports` is two
# lists in Kubernetes: a container's (by containerPort) and a Service's (by port).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "addresses": "type",
    "resourceClaims": "name",
}
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# Lists of scalars with patchStrategy "merge": a patch adds its values to the live ones.
PRIMITIVE_MERGE = frozenset({"finalizers"})

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE = "$deleteFromPrimitiveList/"
SET_ELEMENT_ORDER = "$setElementOrder/"


class PatchError(errors.BadRequest):
    """A patch that cannot be parsed or does not apply; the text names what and where."""


class _Delete:
    """What a `$patch: delete` map merges to: the key holding it goes away."""


DELETED = _Delete()


# ------------------------------------------------------------------ entry points


def parse_patch(text: str) -> Any:
    """The patch a user typed: JSON, or YAML as kubectl also accepts (`-p 'spec: {...}'`)."""
    stripped = text.strip()
    if not stripped:
        raise PatchError("unable to parse an empty patch")
    try:
        return json.loads(stripped)
    except RecursionError:
        raise PatchError("unable to parse the patch: it nests too deeply") from None
    except ValueError as json_err:
        if stripped[0] in "{[":
            raise PatchError(f"unable to parse {json.dumps(text)}: {json_err}") from None
    try:
        return yamlio.load(stripped)
    except yaml.YAMLError as yaml_err:
        problem = getattr(yaml_err, "problem", None) or str(yaml_err)
        raise PatchError(f"unable to parse {json.dumps(text)}: yaml: {problem}") from None


def apply_patch(doc: dict[str, Any], patch: Any, patch_type: str) -> dict[str, Any]:
    """`doc` with `patch` applied (a new dict; `doc` is untouched). PatchError if it fails."""
    if patch_type not in PATCH_TYPES:
        raise PatchError(f'--type must be one of [{" ".join(PATCH_TYPES)}], not "{patch_type}"')
    if patch_type == "json":
        result = json_patch(doc, patch)
    else:
        if not isinstance(patch, dict):
            raise PatchError(
                f"a {patch_type} merge patch must be a JSON object, not {_kind_of(patch)}"
            )
        result = merge_patch(doc, patch) if patch_type == "merge" else strategic_merge(doc, patch)
    if result is DELETED:
        raise PatchError('"$patch: delete" at the top would delete the object: use delete')
    if not isinstance(result, dict):
        raise PatchError(f"the patched object must be a JSON object, not {_kind_of(result)}")
    return result


def sets_resource_version(patch: Any, patch_type: str) -> bool:
    """Whether the patch names metadata.resourceVersion (a precondition: no retry on Conflict)."""
    if patch_type == "json":
        return isinstance(patch, list) and any(
            isinstance(op, dict) and str(op.get("path", "")).startswith("/metadata/resourceVersion")
            for op in patch
        )
    meta = patch.get("metadata") if isinstance(patch, dict) else None
    return isinstance(meta, dict) and meta.get("resourceVersion") not in (None, "")


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"{json.dumps(value)}"


# ------------------------------------------------------------------ RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON merge patch: maps merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ------------------------------------------------------------------ RFC 6902


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply a list of RFC 6902 operations in order; all of them or none."""
    if not isinstance(operations, list):
        raise PatchError(
            "a json patch must be a list of operations, e.g. "
            '[{"op": "replace", "path": "/spec/replicas", "value": 3}]'
        )
    result = copy.deepcopy(doc)
    for index, op in enumerate(operations):
        result = _apply_operation(result, op, index)
    return result


def _apply_operation(doc: Any, op: Any, index: int) -> Any:
    if not isinstance(op, dict):
        raise PatchError(f"json patch operation {index}: must be an object, not {_kind_of(op)}")
    name = op.get("op")
    path = _pointer_field(op, "path", index)
    if name in ("add", "replace", "test") and "value" not in op:
        raise PatchError(f'jsonpatch {name} operation: missing "value" (operation {index})')
    if name == "add":
        return _add(doc, path, copy.deepcopy(op["value"]), name)
    if name == "remove":
        return _remove(doc, path, name)[0]
    if name == "replace":
        _remove(doc, path, name)
        return _add(doc, path, copy.deepcopy(op["value"]), name)
    if name in ("move", "copy"):
        source = _pointer_field(op, "from", index)
        if name == "move":
            if path != source and path.startswith(source + "/"):
                raise PatchError(f'jsonpatch move operation: cannot move "{source}" into itself')
            doc, value = _remove(doc, source, name)
        else:
            value = copy.deepcopy(_get(doc, source, name))
        return _add(doc, path, value, name)
    if name == "test":
        if not _same(_get(doc, path, name), op["value"]):
            raise PatchError(f'testing value "{path}" failed: test failed')
        return doc
    raise PatchError(
        f'json patch operation {index}: unsupported op "{name}": supported values: '
        '"add", "remove", "replace", "move", "copy", "test"'
    )


def _pointer_field(op: dict[str, Any], key: str, index: int) -> str:
    value = op.get(key)
    if not isinstance(value, str):
        raise PatchError(f'json patch operation {index}: missing "{key}" (a JSON pointer)')
    if value and not value.startswith("/"):
        raise PatchError(f'json patch operation {index}: "{key}" must start with "/": {value!r}')
    return value


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901: `/a~1b/0` -> ["a/b", "0"]; "" is the whole document."""
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _missing(op: str, pointer: str) -> PatchError:
    return PatchError(f'jsonpatch {op} operation does not apply: doc is missing path: "{pointer}"')


def _list_index(container: list[Any], token: str, op: str, pointer: str, *, end: bool) -> int:
    """A list index token: digits within range (`-` and len() too when adding)."""
    if end and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _missing(op, pointer)
    position = int(token)
    if position > len(container) or (position == len(container) and not end):
        raise PatchError(
            f"jsonpatch {op} operation does not apply: index {position} is out of range "
            f'for "{pointer}" (length {len(container)})'
        )
    return position


def _parent(doc: Any, pointer: str, op: str) -> tuple[Any, str]:
    tokens = parse_pointer(pointer)
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, op, pointer)
    return node, tokens[-1]


def _child(node: Any, token: str, op: str, pointer: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise _missing(op, pointer)
        return node[token]
    if isinstance(node, list):
        return node[_list_index(node, token, op, pointer, end=False)]
    raise _missing(op, pointer)


def _get(doc: Any, pointer: str, op: str) -> Any:
    node = doc
    for token in parse_pointer(pointer):
        node = _child(node, token, op, pointer)
    return node


def _add(doc: Any, pointer: str, value: Any, op: str) -> Any:
    if not pointer:
        return value
    parent, token = _parent(doc, pointer, op)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, token, op, pointer, end=True), value)
    else:
        raise _missing(op, pointer)
    return doc


def _remove(doc: Any, pointer: str, op: str) -> tuple[Any, Any]:
    """(the document without the value, the value)."""
    if not pointer:
        return None, doc
    parent, token = _parent(doc, pointer, op)
    if isinstance(parent, dict):
        if token not in parent:
            raise _missing(op, pointer)
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, token, op, pointer, end=False))
    raise _missing(op, pointer)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, and containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------ strategic merge


def merge_key(path: Sequence[str], field: str) -> str | None:
    """The patchMergeKey of list `field` under `path` (field names, outermost first)."""
    if field == "ports":
        return "containerPort" if any(p in CONTAINER_LISTS for p in path) else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(original: Any, patch: dict[str, Any], path: tuple[str, ...] = ()) -> Any:
    """Merge a strategic patch map into `original`; DELETED when the patch says `$patch: delete`."""
    directive = patch.get(DIRECTIVE, "merge")
    if directive == "delete":
        return DELETED
    if directive == "replace":
        return _clean(patch)
    if directive != "merge":
        raise PatchError(f'unknown patch type: "{directive}" in map (want merge, replace, delete)')
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    orders: dict[str, Any] = {}
    for key, value in patch.items():
        if key in (DIRECTIVE, RETAIN_KEYS):
            continue
        if key.startswith(SET_ELEMENT_ORDER):
            orders[key[len(SET_ELEMENT_ORDER) :]] = value
        elif key.startswith(DELETE_FROM_PRIMITIVE):
            _delete_from_primitive(result, key[len(DELETE_FROM_PRIMITIVE) :], value)
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, (*path, key))
            if merged is DELETED:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, path, key)
        else:
            result[key] = value
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _ordered(result[key], order, merge_key(path, key))
    retain = patch.get(RETAIN_KEYS)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: Any, patch: list[Any], path: tuple[str, ...], field: str) -> list[Any]:
    live = copy.deepcopy(original) if isinstance(original, list) else []
    if any(isinstance(i, dict) and i.get(DIRECTIVE) == "replace" for i in patch):
        return [_clean(i) for i in patch if not (isinstance(i, dict) and DIRECTIVE in i)]
    if field in PRIMITIVE_MERGE:
        return live + [copy.deepcopy(v) for v in patch if v not in live]
    key = merge_key(path, field)
    if key is None:
        return [_clean(item) for item in patch]
    where = (*path, field)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{'.'.join(where)}: list item {json.dumps(item)} is not an object")
        if key not in item:
            shown = {k: v for k, v in item.items() if k != DIRECTIVE}
            raise PatchError(f"map: {shown} does not contain declared merge key: {key}")
        found = [
            i for i, old in enumerate(live) if isinstance(old, dict) and old.get(key) == item[key]
        ]
        if item.get(DIRECTIVE) == "delete":
            live = [old for i, old in enumerate(live) if i not in found]
            continue
        if found:
            merged = strategic_merge(live[found[0]], item, where)
            live[found[0]] = merged
        else:
            merged = strategic_merge({}, item, where)
            if merged is not DELETED:
                live.append(merged)
    return live


def _delete_from_primitive(result: dict[str, Any], field: str, values: Any) -> None:
    current = result.get(field)
    if isinstance(current, list) and isinstance(values, list):
        kept = [v for v in current if v not in values]
        if kept:
            result[field] = kept
        else:
            result.pop(field)


def _ordered(items: list[Any], order: Any, key: str | None) -> list[Any]:
    """Items in `$setElementOrder`'s order; items it does not name keep their place at the end."""
    if not isinstance(order, list):
        return items

    def ident(item: Any) -> Any:
        return item.get(key) if key is not None and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    rank = {json.dumps(w, sort_keys=True): i for i, w in enumerate(wanted)}
    return sorted(
        items, key=lambda item: rank.get(json.dumps(ident(item), sort_keys=True), len(rank))
    )


def _clean(value: Any) -> Any:
    """A patch value with its directives removed (what is stored when a value replaces)."""
    if isinstance(value, dict):
        return {
            k: _clean(v)
            for k, v in value.items()
            if not (k.startswith("$") and (k in (DIRECTIVE, RETAIN_KEYS) or "/" in k))
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
