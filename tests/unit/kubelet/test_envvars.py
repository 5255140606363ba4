"""Service environment variables: names, both styles, headless Services, overriding."""

from __future__ import annotations

from apimachinery.client import Client
from kubelet.envvars import links_enabled, service_env
from kubelet.runtime.cri_convert import resolve_env
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import POD_NAME_LABEL
from protos import core_pb2
from tests.unit.kubelet.conftest import Harness, eventually, pod, set_pod_cidr


def _service(name: str, ip: str, *ports: tuple[str, int, str]) -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name = name
    svc.metadata.namespace = "default"
    svc.spec.cluster_ip = ip
    for port_name, port, proto in ports:
        svc.spec.ports.add(name=port_name, port=port, protocol=proto)
    return svc


def test_one_named_port_gives_both_styles() -> None:
    env = dict(service_env([_service("web-app-service", "10.96.0.20", ("http", 80, "TCP"))]))
    assert env == {
        "WEB_APP_SERVICE_SERVICE_HOST": "10.96.0.20",
        "WEB_APP_SERVICE_SERVICE_PORT": "80",
        "WEB_APP_SERVICE_SERVICE_PORT_HTTP": "80",
        "WEB_APP_SERVICE_PORT": "tcp://10.96.0.20:80",
        "WEB_APP_SERVICE_PORT_80_TCP": "tcp://10.96.0.20:80",
        "WEB_APP_SERVICE_PORT_80_TCP_PROTO": "tcp",
        "WEB_APP_SERVICE_PORT_80_TCP_PORT": "80",
        "WEB_APP_SERVICE_PORT_80_TCP_ADDR": "10.96.0.20",
    }


def test_several_ports_headless_and_order() -> None:
    dns = _service("dns", "10.96.0.10", ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"))
    headless = _service("db", "None", ("pg", 5432, "TCP"))
    env = service_env([dns, headless])
    names = [k for k, _ in env]
    assert not any(k.startswith("DB_") for k in names)
    values = dict(env)
    assert values["DNS_SERVICE_PORT"] == "53"
    assert values["DNS_SERVICE_PORT_DNS_TCP"] == "53"
    assert values["DNS_PORT"] == "udp://10.96.0.10:53"
    assert values["DNS_PORT_53_UDP_PROTO"] == "udp"
    assert values["DNS_PORT_53_TCP"] == "tcp://10.96.0.10:53"


def test_container_env_refers_to_and_overrides_service_env() -> None:
    pod = core_pb2.Pod()
    spec = pod.spec.containers.add(name="c", image="busybox")
    spec.env.add(name="URL", value="http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/")
    spec.env.add(name="WEB_SERVICE_PORT", value="8080")
    services = service_env([_service("web", "10.96.0.7", ("", 80, "TCP"))])
    env = dict(resolve_env(pod, spec, service_env=services))
    assert env["URL"] == "http://10.96.0.7:80/"
    assert env["WEB_SERVICE_PORT"] == "8080"


def test_enable_service_links_defaults_to_true() -> None:
    pod = core_pb2.Pod()
    assert links_enabled(pod)
    pod.spec.enable_service_links = False
    assert not links_enabled(pod)


async def test_kubelet_gives_containers_the_namespace_services(
    client: Client, harness: Harness
) -> None:
    await client.create(_service("web-app-service", "10.96.0.20", ("http", 80, "TCP")))
    other = _service("elsewhere", "10.96.0.21", ("http", 80, "TCP"))
    namespace = core_pb2.Namespace()
    namespace.metadata.name = "other"
    await client.create(namespace)
    other.metadata.namespace = "other"
    await client.create(other)
    runtime = FakeRuntime()
    await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", "10.244.1.0/24")
    await client.create(pod("web", "node1"))
    no_links = pod("quiet", "node1")
    no_links.spec.enable_service_links = False
    await client.create(no_links)

    async def started() -> bool:
        return len(runtime.container_configs) == 2

    await eventually(started)
    by_pod = {
        cfg.labels[POD_NAME_LABEL]: dict(cfg.env) for cfg in runtime.container_configs.values()
    }
    assert by_pod["web"]["WEB_APP_SERVICE_SERVICE_HOST"] == "10.96.0.20"
    assert not any(k.startswith("ELSEWHERE_") for k in by_pod["web"])
    assert by_pod["quiet"] == {}
