"""The writers of bench/api_latency.py: a user of their own, and how they connect.

`bench-writer` is a client certificate signed here with the server's CA (as
`kubeadm kubeconfig user` makes one), in a kubeconfig for the API port: its
writes arrive over mutual TLS, through the TLS front, as a remote client's
do. A Role lets it create and update ConfigMaps in `default`, and a binding
to the trace exporter's ClusterRole lets its spans reach the server with
`--tracing on`. Not being in system:masters, it meets the server's in-flight
limit and loop-lag trigger (apiserver/inflight.py): a refusal is a 429.

`connect` opens either that kind of client or the local admin's (a unix
socket, no TLS); `_cm` is the ConfigMap every benchmark writes, stamped with
the wall-clock time it was made, which the watchers subtract from the time
its event reaches them. bench/api_latency.py imports these names, and
bench/tracing_api.py and bench/api_watch.py import them from it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from apimachinery import certs, errors, kubeconfig
from apimachinery.client import Client
from localcluster.processes import ApiServerProcess
from protos import core_pb2, meta_pb2, rbac_pb2

NAMESPACE = "default"
WRITER = "bench-writer"  # the writers' user: not in system:masters, so the limit applies
TRACE_EXPORTER = "system:tinykube:trace-exporter"  # create /traces (auth/bootstrappolicy.py)


def connect(target: str, *, retries: bool = True) -> Client:
    """`unix:PATH`: the local admin's socket, no TLS. Else a kubeconfig file: its user over
    mutual TLS on the API port, through the TLS front, as a remote client. Without `retries`
    a 429 is raised at once (the writers count refusals)."""
    if target.startswith("unix:"):
        return Client(target)
    return Client.from_config(kubeconfig.load(target), max_retries=10 if retries else 0)


def writer_kubeconfig(srv: ApiServerProcess) -> Path:
    """WRITER's client certificate, signed by the server's CA, in a kubeconfig for the API port."""
    layout = srv.pki
    ca = certs.CertKeyPair(certs.read_cert(layout.ca_cert), certs.read_key(layout.ca_key))
    pair = certs.new_cert_and_key(ca, certs.CertConfig(WRITER))
    path = Path(layout.kubeconfig(WRITER))
    document = kubeconfig.new_config(
        server=f"https://{srv.secure_address}",
        ca_pem=certs.encode_cert_pem(ca.cert),
        user=WRITER,
        cert_pem=certs.encode_cert_pem(pair.cert),
        key_pem=certs.encode_key_pem(pair.key),
    )
    kubeconfig.write(path, document)
    return path


async def grant_writer(admin: str, writer: str) -> None:
    """A Role for creating and updating ConfigMaps in NAMESPACE, bound to WRITER (and the
    trace exporter's ClusterRole); returns once the writer's dry-run create is allowed."""
    group = "rbac.authorization.k8s.io"
    meta = meta_pb2.ObjectMeta(name=WRITER, namespace=NAMESPACE)
    rule = rbac_pb2.PolicyRule(
        verbs=["create", "update"], api_groups=[""], resources=["configmaps"]
    )
    role = rbac_pb2.Role(api_version=f"{group}/v1", kind="Role", metadata=meta, rules=[rule])
    binding = rbac_pb2.RoleBinding(
        api_version=f"{group}/v1",
        kind="RoleBinding",
        metadata=meta,
        role_ref=rbac_pb2.RoleRef(api_group=group, kind="Role", name=WRITER),
        subjects=[rbac_pb2.Subject(kind="User", api_group=group, name=WRITER)],
    )
    exporter = rbac_pb2.ClusterRoleBinding(  # --tracing on: the writer's spans reach the server
        api_version=f"{group}/v1",
        kind="ClusterRoleBinding",
        metadata=meta_pb2.ObjectMeta(name=WRITER),
        role_ref=rbac_pb2.RoleRef(api_group=group, kind="ClusterRole", name=TRACE_EXPORTER),
        subjects=binding.subjects,
    )
    async with connect(admin) as c:
        for obj in (role, binding, exporter):
            await c.create(obj)
    async with connect(writer) as c:
        for _ in range(100):
            try:
                await c.create(_cm("rbac-probe", "probe"), dry_run=True)
                return
            except errors.Forbidden:
                await asyncio.sleep(0.05)
    raise SystemExit(f"api_latency: {WRITER} was not allowed to write within 5 s")


def _cm(name: str, run: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.labels["run"] = run
    cm.data["t"] = repr(time.time())
    return cm


# ----------------------------------------------------------------------------- watchers
