"""Service environment variables: how a pod finds Services without DNS (kubelet envvars.go).

Before cluster DNS existed, Kubernetes told each container where the Services
of its namespace were through environment variables, in two styles, and it
still does unless the pod sets `enableServiceLinks: false`. For a Service
`web-app-service` with clusterIP 10.96.0.20 and one port `http` 80/TCP, a
container started after the Service exists sees:

    WEB_APP_SERVICE_SERVICE_HOST=10.96.0.20          the Kubernetes style
    WEB_APP_SERVICE_SERVICE_PORT=80                  (the first port)
    WEB_APP_SERVICE_SERVICE_PORT_HTTP=80             (one per named port)
    WEB_APP_SERVICE_PORT=tcp://10.96.0.20:80         the Docker-links style
    WEB_APP_SERVICE_PORT_80_TCP=tcp://10.96.0.20:80  (one group per port)
    WEB_APP_SERVICE_PORT_80_TCP_PROTO=tcp
    WEB_APP_SERVICE_PORT_80_TCP_PORT=80
    WEB_APP_SERVICE_PORT_80_TCP_ADDR=10.96.0.20

so `wget -qO- http://$WEB_APP_SERVICE_SERVICE_HOST/` works in any pod of the
namespace. The name is upper-cased with `-` turned into `_`. Services without
a cluster IP (headless, `None`) get no variables. The variables come first in
the container's environment: the container's own `env` can use them in
`$(VAR)` references and override them (cri_convert.resolve_env).

The kubelet keeps a Service informer across all namespaces for this; the
variables are computed when a container is created, so a Service made later
appears only in containers started after it -- as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable

from protos import core_pb2


def _prefix(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(services: Iterable[core_pb2.Service]) -> list[tuple[str, str]]:
    """The variables for these Services (those of the pod's namespace), sorted by name."""
    env: list[tuple[str, str]] = []
    for svc in sorted(services, key=lambda s: s.metadata.name):
        ip = svc.spec.cluster_ip
        if not ip or ip == "None" or not svc.spec.ports:
            continue
        name = _prefix(svc.metadata.name)
        first = svc.spec.ports[0]
        env.append((f"{name}_SERVICE_HOST", ip))
        env.append((f"{name}_SERVICE_PORT", str(first.port)))
        for port in svc.spec.ports:
            if port.name:
                env.append((f"{name}_SERVICE_PORT_{_prefix(port.name)}", str(port.port)))
        env.append((f"{name}_PORT", f"{(first.protocol or 'TCP').lower()}://{ip}:{first.port}"))
        for port in svc.spec.ports:
            proto = port.protocol or "TCP"
            group = f"{name}_PORT_{port.port}_{proto.upper()}"
            env.append((group, f"{proto.lower()}://{ip}:{port.port}"))
            env.append((f"{group}_PROTO", proto.lower()))
            env.append((f"{group}_PORT", str(port.port)))
            env.append((f"{group}_ADDR", ip))
    return env


def links_enabled(pod: core_pb2.Pod) -> bool:
    """`enableServiceLinks` defaults to true."""
    spec = pod.spec
    return not spec.HasField("enable_service_links") or bool(spec.enable_service_links)
