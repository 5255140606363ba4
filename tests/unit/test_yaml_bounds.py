"""Hostile YAML is refused fast with a clear error: alias bombs, deep nesting (yamlio.py)."""

from __future__ import annotations

import time

import pytest
import yaml

from apimachinery import codec, errors, yamlio
from apimachinery import patch as patches
from tests.unit.cli_apiserver import ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(60)


def laughs(levels: int = 9) -> str:
    """The "billion laughs": each level is nine aliases of the one before (9**levels strings)."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: lol", "data:"]
    lines.append('  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    prev = "a"
    for name in "bcdefghijk"[: levels - 1]:
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(errors.StatusError) as caught:
        codec.decode_documents(laughs(), "bomb.yaml")
    assert "yaml: document contains excessive aliasing" in caught.value.message
    assert time.monotonic() - started < 2.0


def test_expanded_size_counts_each_alias_use() -> None:
    node = yaml.compose("a: &x [1, 2]\nb: *x\nc: *x\n", Loader=yamlio.Loader)
    assert node is not None
    # root + 3 keys + 3 uses of a 3-node list (the list and its two items)
    assert yamlio.expanded_size(node) == 1 + 3 + 3 * 3
    with pytest.raises(yamlio.LimitExceeded):
        yamlio.expanded_size(node, limit=10)


def test_a_few_honest_aliases_are_fine() -> None:
    text = "a: &env {name: X, value: y}\nb: [*env, *env]\n"
    assert yamlio.load(text) == {
        "a": {"name": "X", "value": "y"},
        "b": [{"name": "X", "value": "y"}] * 2,
    }


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    deep = "a: " + "[" * 5000 + "]" * 5000
    with pytest.raises(errors.StatusError) as caught:
        codec.decode_documents(deep, "deep.yaml")
    assert "exceeded max depth" in caught.value.message


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "spec: " + "[" * 5000 + "]" * 5000])
def test_patches_that_nest_too_deeply_are_refused(text: str) -> None:
    with pytest.raises(patches.PatchError) as caught:
        patches.parse_patch(text)
    assert "deep" in caught.value.message


def test_load_refuses_several_documents_and_bombs() -> None:
    with pytest.raises(yaml.YAMLError):
        yamlio.load("a: 1\n---\nb: 2\n")
    with pytest.raises(yamlio.LimitExceeded):
        yamlio.load(laughs())


def test_cli_apply_of_a_bomb_fails_fast_and_stores_nothing(
    apiserver: ApiServerProcess, tmp_path: object
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bomb.yaml"
    path.write_text(laughs())
    started = time.monotonic()
    result = apiserver.tk("apply", "-f", str(path))
    no_traceback(result)
    assert result.exit_code == 1
    assert "excessive aliasing" in result.output
    assert time.monotonic() - started < 10
    assert "lol" not in apiserver.tk("get", "configmaps").output
