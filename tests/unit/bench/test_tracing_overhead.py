"""bench/tracing_overhead.py and the options it hands to bench/api_latency.py: the on/off
comparison of pooled samples, the verdict against the 5% target, and option parsing."""

from __future__ import annotations

import argparse
import math

import pytest

from bench import api_latency, tracing_costs
from bench.tracing_overhead import Comparison, compare, parse_args, verdict


def test_compare_pools_the_runs_of_each_mode_before_taking_percentiles() -> None:
    # off: 1..10 ms over two runs; on: the same, each 10% slower.
    off = [[i / 1000 for i in range(1, 6)], [i / 1000 for i in range(6, 11)]]
    on = [[v * 1.1 for v in run] for run in off]
    c = compare("write", off, on)
    assert (c.off_p50, c.off_p99) == (0.005, 0.010)  # nearest rank: the 5th and 10th of 10
    assert c.on_p50 == pytest.approx(0.0055) and c.on_p99 == pytest.approx(0.011)
    assert c.p50_pct == pytest.approx(10.0) and c.p99_pct == pytest.approx(10.0)


def test_compare_refuses_a_mode_without_samples() -> None:
    with pytest.raises(ValueError, match=r"write: no samples \(off 0, on 1\)"):
        compare("write", [[]], [[1.0]])


def test_the_line_shows_both_modes_and_the_signed_overhead() -> None:
    line = Comparison("sequential", 0.600, 0.900, 0.612, 0.882).line("s", 1.0)
    assert "off p50 0.600 p99 0.900 s" in line
    assert "on p50 0.612 p99 0.882 s" in line
    assert "overhead p50 +2.0 %  p99 -2.0 %" in line


def test_verdict_names_the_largest_overhead_and_the_target() -> None:
    small = Comparison("write", 1.0, 2.0, 1.01, 2.02)  # +1 %
    large = Comparison("burst", 1.0, 2.0, 1.0, 2.2)  # p99 +10 %
    assert verdict([small]) == "largest overhead +1.0 % (write); target <= 5 % met"
    assert verdict([small, large]) == (
        "largest overhead +10.0 % (burst); target <= 5 % NOT met: burst p99 +10.0 %"
    )


def test_a_figure_over_the_target_by_less_than_the_controls_noise_is_not_called_met() -> None:
    noisy = Comparison("watch, 1 watcher", 1.0, 2.0, 1.03, 2.3)  # p50 +3 %, p99 +15 %
    within = verdict([noisy], {"watch, 1 watcher": (1.3, 19.0)})  # the control moved 19 %
    assert within == (
        "largest overhead +15.0 % (watch, 1 watcher); target <= 5 % met where measurable; "
        "within the control's noise: watch, 1 watcher p99 +15.0 % (control ±19.0 %)"
    )
    beyond = verdict([noisy], {"watch, 1 watcher": (1.3, 4.0)})  # 15 > 5 + 4
    assert beyond.endswith("NOT met: watch, 1 watcher p99 +15.0 %")
    assert verdict([noisy]).endswith("NOT met: watch, 1 watcher p99 +15.0 %")  # no control


def test_quick_is_one_run_of_each() -> None:
    assert parse_args([]).runs == 2
    assert parse_args(["--quick"]).runs == 1
    assert parse_args(["--runs", "3", "--only", "api"]).only == "api"


@pytest.mark.parametrize("argv", [["--runs", "0"], ["--pods", "0"], ["--duration", "0"]])
def test_bad_numbers_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_api_latency_takes_its_rows_and_tracing_from_the_command_line() -> None:
    args = api_latency.parse_args(["--rates", "200", "--watchers", "1,100", "--tracing", "on"])
    assert (args.rates, args.watchers, args.tracing) == ([200], [1, 100], "on")
    assert api_latency.parse_args([]).rates == [20, 200, 1000]
    quick = api_latency.parse_args(["--quick"])
    assert (quick.rates, quick.duration, quick.tracing) == ([20, 200], 2.0, "off")


def test_api_latency_names_a_bad_list() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="'20,x'"):
        api_latency._numbers("20,x")
    with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
        api_latency._numbers("0")


def test_cpu_us_is_per_call() -> None:
    calls: list[int] = []
    per_call = tracing_costs.cpu_us(calls.append, 100)
    assert len(calls) == 300  # three rounds, the best kept
    assert per_call >= 0 and math.isfinite(per_call)


def test_the_paired_line_names_the_two_classes() -> None:
    line = Comparison("write, 1 watcher", 0.0025, 0.0030, 0.0026, 0.0030).line(
        labels=("untraced", "traced")
    )
    assert "untraced p50 2.50 p99 3.00 ms" in line and "traced p50 2.60 p99 3.00 ms" in line
    assert "overhead p50 +4.0 %  p99 +0.0 %" in line
