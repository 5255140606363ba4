"""The containerd runtime's CRI client against an in-process fake CRI server (no containerd).

What is checked here is the client's own logic: gRPC errors become the
kubelet's errors (NOT_FOUND -> NotFoundError and ignored by stop/remove,
a failed pull -> ErrImagePull, a failed start -> RunContainerError),
ListContainers asks ContainerStatus only for containers whose state changed,
and sandbox IPs come from PodSandboxStatus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelet.errors import ContainerStartError, ImagePullError, NotFoundError
from kubelet.runtime.cri import CRIRuntime, grpc_target
from kubelet.runtime.interface import ContainerState, SandboxState
from protos import cri_pb2 as cri
from protos import cri_pb2_grpc as cri_grpc


class FakeCRI(cri_grpc.RuntimeServiceServicer, cri_grpc.ImageServiceServicer):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.state = cri.CONTAINER_RUNNING

    async def Version(self, request: Any, context: Any) -> Any:
        return cri.VersionResponse(
            runtime_name="containerd", runtime_version="1.6.20", runtime_api_version="v1"
        )

    async def ListPodSandbox(self, request: Any, context: Any) -> Any:
        item = cri.PodSandbox(
            id="sb1",
            metadata=cri.PodSandboxMetadata(name="p", uid="u1", namespace="default"),
            state=cri.SANDBOX_READY,
            created_at=1_000_000_000,
            labels={"io.kubernetes.pod.uid": "u1"},
        )
        wanted = request.filter.label_selector.get("io.kubernetes.pod.uid")
        return cri.ListPodSandboxResponse(items=[item] if wanted in (None, "u1") else [])

    async def PodSandboxStatus(self, request: Any, context: Any) -> Any:
        self.calls.append("PodSandboxStatus")
        if request.pod_sandbox_id != "sb1":
            await context.abort(grpc.StatusCode.NOT_FOUND, "an error occurred: not found")
        return cri.PodSandboxStatusResponse(
            status=cri.PodSandboxStatus(
                id="sb1",
                metadata=cri.PodSandboxMetadata(name="p", uid="u1", namespace="default"),
                state=cri.SANDBOX_READY,
                network=cri.PodSandboxNetworkStatus(ip="10.99.0.5"),
            )
        )

    async def StopPodSandbox(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, "not found")

    async def ListContainers(self, request: Any, context: Any) -> Any:
        self.calls.append("ListContainers")
        return cri.ListContainersResponse(
            containers=[
                cri.Container(
                    id="c1",
                    pod_sandbox_id="sb1",
                    metadata=cri.ContainerMetadata(name="web"),
                    state=self.state,
                )
            ]
        )

    async def ContainerStatus(self, request: Any, context: Any) -> Any:
        self.calls.append("ContainerStatus")
        exited = self.state == cri.CONTAINER_EXITED
        return cri.ContainerStatusResponse(
            status=cri.ContainerStatus(
                id="c1",
                metadata=cri.ContainerMetadata(name="web", attempt=0),
                state=self.state,
                started_at=2_000_000_000,
                finished_at=3_000_000_000 if exited else 0,
                exit_code=1 if exited else 0,
                reason="Error" if exited else "",
                image=cri.ImageSpec(image="nginx:latest"),
                log_path="/nowhere/web/0.log",
            )
        )

    async def StartContainer(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNKNOWN, 'exec: "nope": executable file not found')

    async def PullImage(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNKNOWN, f"failed to resolve {request.image.image}")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[CRIRuntime, FakeCRI]]:
    fake = FakeCRI()  # type: ignore[abstract]  # only the calls under test
    server = grpc.aio.server()
    cri_grpc.add_RuntimeServiceServicer_to_server(fake, server)
    cri_grpc.add_ImageServiceServicer_to_server(fake, server)
    socket = tmp_path / "cri.sock"
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    runtime = CRIRuntime(str(socket), log_root=str(tmp_path / "logs"))
    try:
        yield runtime, fake
    finally:
        await runtime.close()
        await server.stop(None)


def test_endpoint_forms() -> None:
    assert grpc_target("/run/c.sock") == "unix:///run/c.sock"
    assert grpc_target("unix:///run/c.sock") == "unix:///run/c.sock"


async def test_errors_become_kubelet_errors(client: tuple[CRIRuntime, FakeCRI]) -> None:
    runtime, _ = client
    assert str(await runtime.version()) == "containerd://1.6.20"
    with pytest.raises(NotFoundError):
        await runtime.pod_sandbox_status("gone")
    await runtime.stop_pod_sandbox("gone")  # NOT_FOUND: already stopped, fine
    with pytest.raises(ImagePullError, match="failed to resolve nginx:9") as pull:
        await runtime.pull_image("nginx:9")
    assert pull.value.reason == "ErrImagePull"
    with pytest.raises(ContainerStartError, match="executable file not found") as start:
        await runtime.start_container("c1")
    assert start.value.reason == "RunContainerError"


async def test_sandbox_ip_from_status(client: tuple[CRIRuntime, FakeCRI]) -> None:
    runtime, fake = client
    sandboxes = await runtime.list_pod_sandboxes(pod_uid="u1")
    assert [(s.id, s.ip, s.state) for s in sandboxes] == [("sb1", "10.99.0.5", SandboxState.READY)]
    await runtime.list_pod_sandboxes(pod_uid="u1")
    assert fake.calls.count("PodSandboxStatus") == 1  # an IP is cached for the sandbox's life
    assert await runtime.list_pod_sandboxes(pod_uid="other") == []


async def test_container_status_asked_only_on_state_change(
    client: tuple[CRIRuntime, FakeCRI],
) -> None:
    runtime, fake = client
    first = await runtime.list_containers(sandbox_id="sb1")
    again = await runtime.list_containers(sandbox_id="sb1")
    assert fake.calls.count("ContainerStatus") == 1
    assert first == again
    assert (first[0].state, first[0].sandbox_id, first[0].started_at) == (
        ContainerState.RUNNING,
        "sb1",
        2.0,
    )
    fake.state = cri.CONTAINER_EXITED
    exited = await runtime.list_containers(sandbox_id="sb1")
    assert fake.calls.count("ContainerStatus") == 2
    assert (exited[0].state, exited[0].exit_code, exited[0].finished_at) == (
        ContainerState.EXITED,
        1,
        3.0,
    )
