"""Small object builders for API server tests."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from apiserver.listeners import ServingOptions
from cli.cmd_pki import NodeSpec, PkiOptions, init_pki
from protos import apps_pb2, core_pb2, meta_pb2

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "examples" / "web-app.yaml"


def configmap(name: str, namespace: str = "default", **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = namespace
    cm.data.update(data)
    return cm


def deployment(name: str, replicas: int = 2, image: str = "nginx:latest") -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.spec.replicas = replicas
    d.spec.selector.CopyFrom(meta_pb2.LabelSelector(match_labels={"app": name}))
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name=name, image=image).ports.add(container_port=80)
    return d


def service(name: str, port: int = 80, type_: str = "", node_port: int = 0) -> core_pb2.Service:
    s = core_pb2.Service(api_version="v1", kind="Service")
    s.metadata.name = name
    s.spec.selector["app"] = name
    if type_:
        s.spec.type = type_
    p = s.spec.ports.add(port=port)
    p.target_port.int_val = port
    if node_port:
        p.node_port = node_port
    return s


def pod(name: str, node: str = "", labels: dict[str, str] | None = None) -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.labels.update(labels or {})
    p.spec.containers.add(name="c", image="nginx:1.25")
    if node:
        p.spec.node_name = node
    return p


def tls_serving(tmp_path: Path) -> tuple[Path, ServingOptions]:
    """A PKI made by `pki init`'s code under tmp_path/pki-dir, and TLS serving on loopback
    with it (any free port), for tests of the API server's secure port."""
    pki = tmp_path / "pki-dir"
    local = ipaddress.ip_address("127.0.0.1")
    init_pki(PkiOptions(directory=pki, nodes=(NodeSpec("node1", (local,)),)), echo=lambda *_: None)
    serving = ServingOptions(
        listen=("127.0.0.1:0",),
        tls_cert_file=str(pki / "pki" / "apiserver.crt"),
        tls_private_key_file=str(pki / "pki" / "apiserver.key"),
        client_ca_file=str(pki / "pki" / "ca.crt"),
    )
    return pki, serving
