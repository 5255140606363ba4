"""The node's side of `tinykube logs` options (kubelet/logs.py): the request checked as the API
checks PodLogOptions, RFC3339Nano stamps, since after tail, and when a container returns."""

from __future__ import annotations

import pytest

from apimachinery import errors
from kubelet.logs import LogOptions, format_timestamp, render, will_restart
from kubelet.runtime.interface import Container, ContainerState, LogLine
from protos import core_pb2, kubelet_pb2


def test_request_options_and_their_errors() -> None:
    request = kubelet_pb2.ContainerLogsRequest(follow=True, timestamps=True, since_seconds=300)
    request.tail_lines = 10
    options = LogOptions.from_request(request, now=1000.0)
    assert options == LogOptions(follow=True, tail=10, since=700.0, timestamps=True)
    at = LogOptions.from_request(
        kubelet_pb2.ContainerLogsRequest(since_time="1970-01-01T00:10:00+00:10")
    )
    assert at.since == 0.0
    bad = [
        (kubelet_pb2.ContainerLogsRequest(since_seconds=5, since_time="x"), "at most one of"),
        (kubelet_pb2.ContainerLogsRequest(since_seconds=0), "sinceSeconds: Invalid value: 0"),
        (kubelet_pb2.ContainerLogsRequest(since_time="noon"), 'sinceTime: Invalid value: "noon"'),
        (kubelet_pb2.ContainerLogsRequest(tail_lines=-1), "tailLines: Invalid value: -1"),
    ]
    for req, words in bad:
        with pytest.raises(errors.BadRequest, match=words):
            LogOptions.from_request(req)


def test_timestamps_are_go_rfc3339nano() -> None:
    assert format_timestamp(1714557600.0) == "2024-05-01T10:00:00Z"
    assert format_timestamp(1714557600.5) == "2024-05-01T10:00:00.5Z"
    assert format_timestamp(1714557600.123456) == "2024-05-01T10:00:00.123456Z"
    line = LogLine(1714557600.25, "stdout", "GET /")
    assert render(line, LogOptions(timestamps=True)) == "2024-05-01T10:00:00.25Z GET /"
    assert render(line, LogOptions(since=1714557601.0)) is None
    assert render(line, LogOptions(since=1714557600.0)) == "GET /"


def _pod(policy: str = "", init: str = "", sidecar: bool = False) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.spec.restart_policy = policy
    pod.spec.containers.add(name="app")
    if init:
        spec = pod.spec.init_containers.add(name=init)
        if sidecar:
            spec.restart_policy = "Always"
    return pod


def _exited(name: str, code: int) -> Container:
    return Container("c1", "sb", name, 0, "img", "ref", ContainerState.EXITED, 0.0, exit_code=code)


@pytest.mark.parametrize(
    ("pod", "name", "code", "restarts"),
    [
        (_pod(), "app", 0, True),
        (_pod("Always"), "app", 1, True),
        (_pod("OnFailure"), "app", 1, True),
        (_pod("OnFailure"), "app", 0, False),
        (_pod("Never"), "app", 1, False),
        (_pod("Always", init="setup"), "setup", 0, False),
        (_pod("Always", init="setup"), "setup", 1, True),
        (_pod("Never", init="setup"), "setup", 1, False),
        (_pod("Never", init="proxy", sidecar=True), "proxy", 0, True),
    ],
)
def test_will_restart_follows_the_restart_policy(
    pod: core_pb2.Pod, name: str, code: int, restarts: bool
) -> None:
    assert will_restart(pod, _exited(name, code)) is restarts


def test_no_restart_once_deleted_or_finished() -> None:
    deleting = _pod("Always")
    deleting.metadata.deletion_timestamp.seconds = 1
    assert not will_restart(deleting, _exited("app", 1))
    done = _pod("Always")
    done.status.phase = "Failed"
    assert not will_restart(done, _exited("app", 1))
