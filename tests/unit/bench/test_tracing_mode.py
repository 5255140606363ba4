"""bench/tracing_mode.py: what `--tracing on|off` does to a benchmark's processes and writes,
the run order, the overhead arithmetic, and the check that a run really was on (or off)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator

import pytest

from apimachinery import tracecontext, tracing
from apimachinery.client import Client
from bench import tracing_mode
from bench.tracing_mode import ENV, Commands, apply_mode, order, overhead_pct, pooled, verdict
from protos import core_pb2


@pytest.fixture
def no_provider() -> Iterator[None]:
    """Each test starts and ends without the process's tracer provider."""
    tracing.shutdown()
    yield
    tracing.shutdown()


def test_off_sets_the_variable_every_child_inherits() -> None:
    env: dict[str, str] = {"PATH": "/usr/bin"}
    apply_mode("off", env)
    assert env == {"PATH": "/usr/bin", ENV: "true"}


def test_on_removes_the_variable() -> None:
    env = {ENV: "true", "PATH": "/usr/bin"}
    apply_mode("on", env)
    assert env == {"PATH": "/usr/bin"}
    apply_mode("on", env)  # absent already: still fine
    assert env == {"PATH": "/usr/bin"}


def test_a_mode_that_is_neither_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'yes'"):
        apply_mode("yes", {})


def test_the_option_defaults_to_off_and_knows_only_on_and_off() -> None:
    ap = argparse.ArgumentParser()
    tracing_mode.add_option(ap)
    assert ap.parse_args([]).tracing == "off"
    assert ap.parse_args(["--tracing", "on"]).tracing == "on"
    with pytest.raises(SystemExit):
        ap.parse_args(["--tracing", "maybe"])


def test_overhead_is_the_increase_in_percent_of_off() -> None:
    assert overhead_pct(0.520, 0.500) == pytest.approx(4.0)
    assert overhead_pct(0.450, 0.500) == pytest.approx(-10.0)  # on was faster: noise
    assert overhead_pct(1.0, 0.0) != overhead_pct(1.0, 0.0)  # NaN: no base to compare with
    assert overhead_pct(float("nan"), 1.0) != overhead_pct(float("nan"), 1.0)


def test_runs_alternate_starting_with_off() -> None:
    assert order(1) == ["off", "on"]
    assert order(2) == ["off", "on", "off", "on"]
    with pytest.raises(ValueError, match="at least 1"):
        order(0)


def test_pooled_keeps_every_sample_of_every_run() -> None:
    assert pooled([[1.0, 2.0], [], [3.0]]) == [1.0, 2.0, 3.0]


def test_verdict_off_wants_no_trace_anywhere() -> None:
    assert verdict("off", {"annotated": False, "traces": 0, "components": []}) == ""
    problem = verdict("off", {"annotated": True, "traces": 0, "components": []})
    assert problem.startswith("tracing off, yet")


def test_verdict_on_names_each_missing_piece() -> None:
    seen = {"annotated": True, "traces": 3, "components": ["default-scheduler", "tinykube"]}
    assert verdict("on", seen, want=("default-scheduler",)) == ""
    assert verdict("on", seen, want=("default-scheduler", "kubelet")) == (
        "tracing on, but no spans from kubelet"
    )
    nothing = {"annotated": False, "traces": 0, "components": []}
    problem = verdict("on", nothing)
    assert "no trace-context annotation" in problem and "holds no trace" in problem


def _cm(name: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    return cm


async def test_off_writes_carry_no_trace(
    client: Client, no_provider: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "true")
    commands = Commands(client)
    assert not commands.on
    with commands.command("create", "create configmap a"):
        assert tracecontext.outgoing() == ""
        await client.create(_cm("a"))
    commands.finish()
    seen = await tracing_mode.evidence(client, "configmaps", "a")
    assert seen == {"annotated": False, "traces": 0, "components": [], "spans": 0}
    assert verdict("off", seen) == ""


async def test_on_writes_are_traced_commands_whose_spans_reach_the_store(
    client: Client, no_provider: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    commands = Commands(client)
    assert commands.on
    with commands.command("create", "create configmap b"):
        assert tracecontext.outgoing().startswith("00-")
        await client.create(_cm("b"))
    assert tracecontext.outgoing() == ""  # the command has ended
    await asyncio.to_thread(commands.finish)  # the export is a blocking call to this server
    seen = await tracing_mode.evidence(client, "configmaps", "b")
    assert seen == {"annotated": True, "traces": 1, "components": ["tinykube"], "spans": 1}
    assert verdict("on", seen) == ""
    trace = await client.get_trace(resource="configmaps", name="b", namespace="default")
    assert [(s.name, s.why) for s in trace.spans] == [("create", "bench: create configmap b")]
