"""bench/tracing_api.py: how its writes are classed traced or untraced, how the watchers tell
the classes apart by name, and the line comparing them."""

from __future__ import annotations

import pytest

from bench import tracing_api
from bench.tracing_api import class_of, line, name_of, parse_args, plan


def test_a_create_and_its_update_share_one_coin_and_the_seed_repeats_the_plan() -> None:
    traced = plan(400, seed=7)
    assert len(traced) == 400
    assert all(traced[i] == traced[i + 1] for i in range(0, 400, 2))
    assert 120 < sum(traced) < 280  # about half, not all of one class
    assert plan(400, seed=7) == traced and plan(400, seed=8) != traced


def test_an_odd_count_still_has_a_coin_for_its_last_write() -> None:
    assert len(plan(5, seed=1)) == 5


@pytest.mark.parametrize("traced", [True, False])
def test_the_watchers_read_the_class_from_the_name(traced: bool) -> None:
    want = "traced" if traced else "untraced"
    assert class_of(name_of("p100w123", traced, 17)) == want
    assert class_of(name_of("p100w123", traced, 17) + "u") == want  # an update's own create


@pytest.mark.parametrize("name", ["rbac-probe", "sat-0-0", "x", "run-q-1"])
def test_other_names_have_no_class(name: str) -> None:
    assert class_of(name) == ""


def test_the_line_gives_both_classes_and_the_overhead() -> None:
    text = line("write, 1 watcher", {"traced": [0.0026, 0.0031], "untraced": [0.0025, 0.0030]})
    assert "untraced p50 2.50 p99 3.00 ms" in text
    assert "traced p50 2.60 p99 3.10 ms" in text
    assert "overhead p50 +4.0 %  p99 +3.3 %" in text
    assert "(2 / 2)" in text


def test_a_class_without_samples_is_said_so() -> None:
    assert "no samples (traced 0, untraced 1)" in line("w", {"traced": [], "untraced": [1.0]})


def test_options_and_their_errors() -> None:
    args = parse_args(["--watchers", "1,100", "--duration", "4"])
    assert (args.watchers, args.duration, args.rate) == ([1, 100], 4.0, 200)
    for bad in (["--watchers", "1,x"], ["--duration", "0"], ["--watchers", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_both_classes_are_named_in_the_results() -> None:
    assert tracing_api.CLASSES == ("traced", "untraced")
