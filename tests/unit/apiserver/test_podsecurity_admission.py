"""PodSecurity admission through a real API server: enforce, warn, audit, and the labels."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from apimachinery import errors, scheme
from apimachinery.client import Client
from apiserver.admission.warnings import METADATA_KEY
from apiserver.server import APIServer
from cli.main import cli
from protos import api_pb2, api_pb2_grpc, apps_pb2, core_pb2

from .objects import deployment, pod

BASELINE = "pod-security.kubernetes.io/enforce"


def namespace(name: str, **labels: str) -> core_pb2.Namespace:
    ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = name
    ns.metadata.labels.update({f"pod-security.kubernetes.io/{k}": v for k, v in labels.items()})
    return ns


def host_path_pod(name: str, namespace: str) -> core_pb2.Pod:
    p = pod(name)
    p.metadata.namespace = namespace
    p.spec.volumes.add(name="root").host_path.path = "/"
    return p


async def create_with_warnings(server: APIServer, obj: object) -> list[str]:
    """Create through the raw gRPC API and return the trailing `warning` metadata."""
    async with grpc.aio.insecure_channel(server.local_address) as channel:
        call = api_pb2_grpc.ResourcesStub(channel).Create(
            api_pb2.CreateRequest(object=scheme.pack(obj))  # type: ignore[arg-type]
        )
        await call
        trailing = await call.trailing_metadata()
    return [value for key, value in trailing or () if key == METADATA_KEY]


async def test_baseline_refuses_a_host_path_pod_and_privileged_runs_it(client: Client) -> None:
    await client.create(namespace("locked", enforce="baseline"))
    await client.create(namespace("open", enforce="privileged"))
    with pytest.raises(errors.Forbidden) as refused:
        await client.create(host_path_pod("debug", "locked"))
    assert str(refused.value) == (
        'pods "debug" is forbidden: violates PodSecurity "baseline:latest": '
        'hostPath volumes (volume "root")'
    )
    with pytest.raises(errors.NotFound):
        await client.get(core_pb2.Pod, "debug", "locked")
    created = await client.create(host_path_pod("debug", "open"))
    assert created.metadata.uid
    # The seed's pods are baseline: they pass.
    ok = pod("web")
    ok.metadata.namespace = "locked"
    assert (await client.create(ok)).metadata.uid


async def test_warn_mode_tells_the_client_and_audit_logs(
    server: APIServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    await client.create(namespace("watched", warn="restricted", audit="baseline"))
    p = host_path_pod("loud", "watched")
    with caplog.at_level(logging.WARNING, logger="apiserver.admission.podsecurityadmission"):
        warnings = await create_with_warnings(server, p)
    assert len(warnings) == 1
    assert warnings[0].startswith('would violate PodSecurity "restricted:latest": ')
    assert 'hostPath volumes (volume "root")' in warnings[0]
    assert (
        'restricted volume types (volume "root" uses restricted volume type "hostPath")'
        in (warnings[0])
    )
    audit = [r for r in caplog.records if r.getMessage() == "pod security audit"]
    assert [getattr(r, "violation", "") for r in audit] == [
        'violates PodSecurity "baseline:latest": hostPath volumes (volume "root")'
    ]


async def test_a_deployment_is_warned_not_refused(server: APIServer, client: Client) -> None:
    await client.create(namespace("locked", enforce="baseline"))
    d = deployment("debug")
    d.metadata.namespace = "locked"
    d.spec.template.spec.volumes.add(name="root").host_path.path = "/"
    warnings = await create_with_warnings(server, d)
    assert warnings == [
        'would violate PodSecurity "baseline:latest": hostPath volumes (volume "root")'
    ]
    assert (await client.get(apps_pb2.Deployment, "debug", "locked")).metadata.uid


async def test_an_unknown_level_is_refused_on_create_and_update(client: Client) -> None:
    with pytest.raises(errors.Invalid) as refused:
        await client.create(namespace("typo", enforce="basline"))
    assert 'metadata.labels[pod-security.kubernetes.io/enforce]: Unsupported value: "basline"' in (
        str(refused.value)
    )
    ns = await client.create(namespace("fine", enforce="baseline"))
    ns.metadata.labels[BASELINE] = "strict"
    with pytest.raises(errors.Invalid):
        await client.update(ns)
    again = await client.get(core_pb2.Namespace, "fine")
    assert again.metadata.labels[BASELINE] == "baseline"


async def test_the_cli_prints_the_warning_once(
    server: APIServer, client: Client, tmp_path: Path
) -> None:
    await client.create(namespace("watched", warn="baseline"))
    manifest = tmp_path / "debug.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: debug, namespace: watched}\n"
        "spec:\n  selector: {matchLabels: {app: debug}}\n  template:\n"
        "    metadata: {labels: {app: debug}}\n    spec:\n"
        "      containers: [{name: c, image: busybox}]\n"
        "      volumes: [{name: root, hostPath: {path: /}}]\n"
    )
    args = ["--server", server.local_address, "apply", "-f", str(manifest)]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "deployment.apps/debug created\n"
    assert result.stderr == (
        'Warning: would violate PodSecurity "baseline:latest": hostPath volumes (volume "root")\n'
    )
