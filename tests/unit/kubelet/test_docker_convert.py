"""The Docker adapter's pure parts: dockershim's names and labels, create requests, states,
json-file log parsing, and runtime status with no daemon (no root, no dockerd)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime import docker_convert as conv
from kubelet.runtime import docker_logs
from kubelet.runtime.docker import DockerRuntime, base_url
from kubelet.runtime.interface import (
    ContainerConfig,
    ContainerState,
    DNSConfig,
    LinuxResources,
    Mount,
    PodSandboxConfig,
    SandboxState,
)

SANDBOX = PodSandboxConfig(
    name="web",
    namespace="default",
    uid="u-1",
    attempt=3,
    hostname="web",
    labels={"app": "web"},
    annotations={"note": "x"},
)


def test_names_follow_dockershim() -> None:
    assert conv.sandbox_name(SANDBOX) == "k8s_POD_web_default_u-1_3"
    config = ContainerConfig(name="nginx", image="nginx", attempt=2)
    name = conv.container_name(config, SANDBOX)
    assert name == "k8s_nginx_web_default_u-1_2"
    assert conv.parse_name("/" + name) == ("nginx", "web", "default", "u-1", 2)
    suffixed = conv.randomized(name)
    assert suffixed.startswith(name + "_") and conv.attempt_of(suffixed) == 2


@pytest.mark.parametrize(
    ("name", "words"),
    [("/mycontainer", "not a kubelet name"), ("/k8s_a_b_c_d_x", "is not a number")],
)
def test_foreign_names_are_rejected(name: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        conv.parse_name(name)
    assert conv.attempt_of(name) == 0


def test_labels_round_trip() -> None:
    labels = conv.sandbox_labels(SANDBOX)
    assert labels[conv.TYPE_LABEL] == "podsandbox"
    assert labels["annotation.note"] == "x"
    assert labels["io.kubernetes.pod.uid"] == "u-1"
    plain, annotations = conv.split_labels(labels)
    assert plain["app"] == "web" and conv.TYPE_LABEL not in plain
    assert annotations == {"note": "x"}


def test_sandbox_request() -> None:
    request = conv.sandbox_create(SANDBOX, "pause:1")
    assert request["image"] == "pause:1" and request["hostname"] == "web"
    assert request["host_config"]["network_mode"] == "none"
    assert request["host_config"]["ipc_mode"] == "shareable"
    host = PodSandboxConfig(name="h", namespace="kube-system", uid="u", host_network=True)
    request = conv.sandbox_create(host, "pause:1")
    assert request["host_config"]["network_mode"] == "host" and "hostname" not in request
    dns = DNSConfig(("10.96.0.10",), ("default.svc.cluster.local",), ("ndots:5",))
    host = conv.sandbox_create(replace(SANDBOX, dns=dns), "pause:1")["host_config"]
    assert (host["dns"], host["dns_search"], host["dns_opt"]) == (
        ["10.96.0.10"],
        ["default.svc.cluster.local"],
        ["ndots:5"],
    )


def test_container_request() -> None:
    config = ContainerConfig(
        name="app",
        image="busybox",
        command=("sh", "-c"),
        args=("echo hi",),
        working_dir="/w",
        env=(("A", "1"),),
        labels={"io.kubernetes.container.name": "app"},
        mounts=(Mount("/data", "/host/data", read_only=True), Mount("/rw", "/host/rw")),
        resources=LinuxResources(100000, 50000, 256, 64 << 20),
    )
    request = conv.container_create(config, "sb1", SANDBOX)
    assert request["entrypoint"] == ["sh", "-c"] and request["command"] == ["echo hi"]
    assert request["environment"] == ["A=1"] and request["working_dir"] == "/w"
    host = request["host_config"]
    assert host["network_mode"] == host["ipc_mode"] == "container:sb1"
    assert host["binds"] == {
        "/host/data": {"bind": "/data", "mode": "ro"},
        "/host/rw": {"bind": "/rw", "mode": "rw"},
    }
    assert (host["cpu_period"], host["cpu_quota"], host["cpu_shares"]) == (100000, 50000, 256)
    assert host["mem_limit"] == host["memswap_limit"] == 64 << 20
    assert request["labels"][conv.SANDBOX_ID_LABEL] == "sb1"
    # Args alone keep the image's entrypoint.
    only_args = conv.container_create(ContainerConfig("a", "img", args=("x",)), "sb1", SANDBOX)
    assert "entrypoint" not in only_args and only_args["command"] == ["x"]


def test_parse_time() -> None:
    assert conv.parse_time("0001-01-01T00:00:00Z") == 0.0
    assert conv.parse_time("") == 0.0
    assert conv.parse_time("2024-05-01T10:00:00.5Z") == pytest.approx(1714557600.5)
    assert conv.parse_time("2024-05-01T12:00:00.25+02:00") == pytest.approx(1714557600.25)
    assert conv.parse_time("2024-05-01T10:00:00Z") == 1714557600


def _inspect(status: str, code: int = 0, oom: bool = False) -> dict[str, object]:
    return {
        "Id": "c1",
        "Name": "/k8s_app_web_default_u-1_4",
        "Created": "2024-05-01T10:00:00Z",
        "Image": "sha256:abc",
        "Config": {
            "Image": "busybox:1.36",
            "Labels": {conv.SANDBOX_ID_LABEL: "sb1", "io.kubernetes.container.name": "app"},
        },
        "State": {
            "Status": status,
            "Running": status == "running",
            "ExitCode": code,
            "OOMKilled": oom,
            "Error": "",
            "StartedAt": "2024-05-01T10:00:01Z",
            "FinishedAt": "2024-05-01T10:00:03Z" if status == "exited" else "0001-01-01T00:00:00Z",
        },
    }


@pytest.mark.parametrize(
    ("status", "code", "oom", "state", "reason"),
    [
        ("created", 0, False, ContainerState.CREATED, ""),
        ("running", 0, False, ContainerState.RUNNING, ""),
        ("exited", 0, False, ContainerState.EXITED, "Completed"),
        ("exited", 2, False, ContainerState.EXITED, "Error"),
        ("exited", 137, True, ContainerState.EXITED, "OOMKilled"),
        ("weird", 0, False, ContainerState.UNKNOWN, ""),
    ],
)
def test_states_and_reasons(
    status: str, code: int, oom: bool, state: ContainerState, reason: str
) -> None:
    container = conv.container_from_inspect(_inspect(status, code, oom), "busybox@sha256:abc")
    assert (container.state, container.reason, container.exit_code) == (state, reason, code)
    assert (container.name, container.attempt, container.sandbox_id) == ("app", 4, "sb1")
    assert container.image == "busybox:1.36" and container.image_ref == "busybox@sha256:abc"
    assert container.started_at == 1714557601
    if state == ContainerState.EXITED:
        assert container.finished_at == 1714557603


def test_sandbox_from_summary() -> None:
    item = {
        "Id": "sb1",
        "Names": ["/k8s_POD_web_default_u-1_3"],
        "State": "running",
        "Created": 1714557600,
        "Labels": conv.sandbox_labels(SANDBOX),
    }
    sandbox = conv.sandbox_from_summary(item, "10.1.0.5")
    assert (sandbox.name, sandbox.namespace, sandbox.pod_uid, sandbox.attempt) == (
        "web",
        "default",
        "u-1",
        3,
    )
    assert sandbox.state == SandboxState.READY and sandbox.ip == "10.1.0.5"
    item["State"] = "exited"
    stopped = conv.sandbox_from_summary(item, "10.1.0.5")
    assert stopped.state == SandboxState.NOTREADY and stopped.ip == ""


# ---- json-file logs ----------------------------------------------------------------------------


def _record(text: str, stream: str = "stdout", when: str = "2024-05-01T10:00:00.1Z") -> bytes:
    return json.dumps({"log": text, "stream": stream, "time": when}).encode() + b"\n"


def test_log_records_join_partials_per_stream() -> None:
    data = (
        _record("one\n")
        + _record("a long ", "stderr")
        + _record("two\n")
        + _record("line\n", "stderr")
        + b"not json\n"
    )
    partial: dict[str, str] = {}
    lines = docker_logs.parse_records(data, partial)
    assert [(x.stream, x.text) for x in lines] == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stderr", "a long line"),
    ]
    assert lines[0].time == pytest.approx(1714557600.1)
    assert partial == {}


async def test_read_log_tail_and_follow(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    third = _record("three\n")
    path.write_bytes(_record("one\n") + _record("two\n") + third[:10])  # a record half-written
    done = asyncio.Event()

    async def exited() -> bool:
        return done.is_set()

    tail = [x.text async for x in docker_logs.read_log(path, follow=False, tail=1, exited=exited)]
    assert tail == ["two"]  # the unfinished record waits

    async def follow() -> list[str]:
        lines = docker_logs.read_log(path, follow=True, tail=None, exited=exited)
        return [x.text async for x in lines]

    task = asyncio.ensure_future(follow())
    await asyncio.sleep(0.3)
    with path.open("ab") as f:
        f.write(third[10:])
    done.set()
    assert await asyncio.wait_for(task, 5) == ["one", "two", "three"]


# ---- no daemon ---------------------------------------------------------------------------------


def test_base_url() -> None:
    assert base_url("/run/d.sock") == "unix:///run/d.sock"
    assert base_url("unix:///run/d.sock") == "unix:///run/d.sock"


async def test_no_daemon_is_not_ready_with_a_message(tmp_path: Path) -> None:
    socket = tmp_path / "docker.sock"
    runtime = DockerRuntime(f"unix://{socket}", cni_conf_dir=str(tmp_path / "net.d"))
    try:
        status = await runtime.status()
        assert not status.runtime_ready and not status.network_ready
        assert "Cannot connect to the Docker daemon" in status.message
        assert str(socket) in status.message
        assert "no CNI configuration file" in status.message
        with pytest.raises(ContainerRuntimeError, match="Is the docker daemon running"):
            await runtime.list_pod_sandboxes()
    finally:
        await runtime.close()
