"""The house's rules, checked from the source: layers, import circles, typed parameters, size.

tinykube is read as much as it is run, so its layout is part of what it
teaches. Kubernetes' picture is five peers over shared machinery:

    cli  localcluster  bench              (users' tools: may import anything below)
    controlplane.py                       (wires the three control-plane packages together)
    apiserver   controllers   scheduler   kubelet   netplugin
    apimachinery   protos                 (shared machinery)

These tests read every module with `ast` (no third-party tool, nothing is
imported or run) and fail on:

* an import circle among the project's own modules (a package's
  `__init__.py` is a module of its own, so a submodule importing from its
  package while the package imports it is a circle too);
* one of the five peers importing another: `apiserver` importing
  `controllers` or `scheduler` (the server knows nothing of its clients;
  `controlplane.py` is the one place that knows all three), or `controllers`,
  `scheduler`, `kubelet` or `netplugin` importing `apiserver` (they reach the
  API only through the client);
* a peer or the shared machinery importing the tools above it (`cli`,
  `localcluster`, `bench`, `controlplane`);
* `localcluster` importing `cli`, and anything outside `tests/` importing
  `tests`;
* a function parameter in controllers/, scheduler/ or kubelet/ annotated
  `Any` (a few justified exceptions are listed in ANY_ALLOWED);
* a function longer than 80 lines anywhere outside generated code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "build", ".git", "__pycache__", ".mypy_cache", ".ruff_cache"}
MAX_FUNCTION_LINES = 80

# Imports that must never be made: package -> packages it must not import. The five
# components are peers: none imports another (controlplane.py alone wires three of them).
PEERS = {"apiserver", "controllers", "scheduler", "kubelet", "netplugin"}
TOOLS = {"controlplane", "localcluster", "cli", "bench"}
FORBIDDEN: dict[str, set[str]] = {
    **{peer: (PEERS - {peer}) | TOOLS for peer in PEERS},
    "apimachinery": PEERS | TOOLS,
    "protos": PEERS | TOOLS | {"apimachinery"},
    "controlplane": {"cli", "localcluster", "bench"},
    "localcluster": {"cli", "bench"},
    "cli": {"bench"},
}

# Function parameters in controllers/, scheduler/ and kubelet/ that may stay `Any`, each with
# why (at most 10). Keyed by "path:function:parameter".
ANY_ALLOWED: dict[str, str] = {}


def _generated(path: Path) -> bool:
    return path.name.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi", "_pb2_grpc.pyi"))


def source_files() -> Iterator[Path]:
    """Every hand-written Python file of the project, tests included."""
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if SKIP_DIRS.intersection(rel.parts) or rel.parts[0].endswith(".egg-info"):
            continue
        if not _generated(path):
            yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports (anywhere in the file, as a reader sees it)."""
    paths = {module_name(p): p for p in source_files()}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                # `import a.b.c` also runs a and a.b: the longest known prefix is the edge.
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_layers_import_only_downwards() -> None:
    wrong = []
    for module, targets in import_graph().items():
        top = module.split(".")[0]
        if top == "tests":
            continue
        for target in targets:
            other = target.split(".")[0]
            if other == "tests" or other in FORBIDDEN.get(top, set()):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports across the layers:\n" + "\n".join(sorted(wrong))


def test_the_layer_check_sees_a_forbidden_import() -> None:
    graph = import_graph()
    assert "apimachinery.client" in graph["controllers.base"], "the graph misses plain imports"
    assert "controllers.manager" in graph["controlplane"]
    assert "apiserver.server" in graph["controlplane"]


def _is_any(annotation: ast.expr | None) -> bool:
    """`Any`, `typing.Any`, `Any | None`, `Optional[Any]`, or the same as a string."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            return _is_any(ast.parse(annotation.value, mode="eval").body)
        except SyntaxError:
            return False
    if isinstance(annotation, ast.Name):
        return annotation.id == "Any"
    if isinstance(annotation, ast.Attribute):
        return annotation.attr == "Any"
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _is_any(annotation.left) or _is_any(annotation.right)
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        return annotation.value.id == "Optional" and _is_any(annotation.slice)
    return False


def functions(path: Path) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def any_parameters(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    found = []
    for fn in functions(path):
        args = fn.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        found += [f"{rel}:{fn.name}:{a.arg}" for a in every if _is_any(a.annotation)]
    return found


def test_component_functions_take_typed_objects_not_any() -> None:
    found = []
    for path in source_files():
        if path.relative_to(ROOT).parts[0] in ("controllers", "scheduler", "kubelet"):
            found += any_parameters(path)
    unexpected = sorted(set(found) - set(ANY_ALLOWED))
    assert not unexpected, "parameters annotated Any:\n" + "\n".join(unexpected)
    assert len(ANY_ALLOWED) <= 10
    stale = sorted(set(ANY_ALLOWED) - set(found))
    assert not stale, f"ANY_ALLOWED names parameters that are typed now: {stale}"


def test_the_any_check_sees_every_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(a: Any, b: Any | None, c: 'Any', d: Optional[Any], e: typing.Any,"
        " f: dict[str, Any], g: int) -> Any: ...\n"
    )
    names = [n.arg for fn in functions(sample) for n in fn.args.args if _is_any(n.annotation)]
    assert names == ["a", "b", "c", "d", "e"]


def test_no_function_is_over_80_lines() -> None:
    long = []
    for path in source_files():
        for fn in functions(path):
            lines = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name} ({lines} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
