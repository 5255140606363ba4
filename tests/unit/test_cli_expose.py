"""`tinykube expose` against a real API server: the Service it builds from the exposed object."""

from __future__ import annotations

import pytest
import yaml

from tests.unit.cli_apiserver import DEPLOYMENT, POD, ApiServerProcess, no_traceback
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server

pytestmark = pytest.mark.timeout(90)


def test_expose_deployment_with_ports_and_type(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(DEPLOYMENT.format(name="e1"))
    result = apiserver.tk(
        "expose", "deployment", "e1", "--port", "80", "--target-port", "8080", "--type", "NodePort"
    )
    assert (result.exit_code, result.stdout) == (0, "service/e1 exposed\n"), result.output
    svc = apiserver.get_dict("services", "e1")
    assert svc["metadata"]["labels"] == {"app": "e1"}
    assert svc["spec"]["selector"] == {"app": "e1"}
    assert svc["spec"]["type"] == "NodePort"
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, 8080, "TCP")
    assert 30000 <= port["nodePort"] <= 32767
    assert svc["spec"]["clusterIP"]


def test_expose_pod_takes_its_labels_and_ports(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="e2"))
    result = apiserver.tk("expose", "pod/e2", "--name", "e2-svc", "--protocol", "UDP")
    assert result.stdout == "service/e2-svc exposed\n", result.output
    svc = apiserver.get_dict("services", "e2-svc")
    assert svc["spec"]["selector"] == {"run": "e2"}
    assert svc["spec"]["ports"] == [{"protocol": "UDP", "port": 8080, "targetPort": 8080}]


def test_expose_service_and_named_ports(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(
        DEPLOYMENT.format(name="e3").replace(
            "image: busybox", "image: b\n        ports: [{containerPort: 9090}]"
        )
    )
    first = apiserver.tk("expose", "deploy", "e3")
    assert first.exit_code == 0, first.output
    ports = apiserver.get_dict("services", "e3")["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in ports] == [("port-1", 80), ("port-2", 9090)]
    again = apiserver.tk(
        "expose", "service", "e3", "--name", "e3-web", "--port", "81", "--target-port", "http"
    )
    assert again.exit_code == 0, again.output
    svc = apiserver.get_dict("services", "e3-web")
    assert svc["spec"]["selector"] == {"app": "e3"}
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_expose_dry_run_prints_without_creating(apiserver: ApiServerProcess) -> None:
    apiserver.create_yaml(POD.format(name="e4"))
    result = apiserver.tk("expose", "pod", "e4", "--port", "90", "--dry-run=client", "-o", "yaml")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["kind"] == "Service" and shown["spec"]["ports"][0]["port"] == 90
    plain = apiserver.tk("expose", "pod", "e4", "--port", "90", "--dry-run=server")
    assert plain.stdout == "service/e4 exposed (server dry run)\n"
    assert not apiserver.exists("services", "e4")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("configmap", "x"), "error: cannot expose a ConfigMap"),
        (
            ("deploy", "nope", "--port", "80"),
            'Error from server (NotFound): deployments.apps "nope"',
        ),
        (("deployz", "nope"), 'doesn\'t have a resource type "deployz"'),
        (("pod", "e5", "--type", "Bogus"), 'spec.type: Unsupported value: "Bogus"'),
        (("pod", "e5", "--port", "http"), "--port: invalid port 'http'"),
        (("pod", "e5", "--port", "99999"), "--port: invalid port '99999'"),
        (("pod", "e5", "--selector", "novalue"), "--selector: expected KEY=VALUE"),
        (("pod", "e6"), "couldn't find port via --port flag or introspection"),
        (("pod", "e7", "--port", "80"), "the pod has no labels"),
        (("pod", "e5", "--name", "Bad_Name"), "Error from server (Invalid)"),
    ],
)
def test_expose_bad_input(apiserver: ApiServerProcess, args: tuple[str, ...], words: str) -> None:
    if not apiserver.exists("pods", "e5"):
        apiserver.create_yaml(POD.format(name="e5"))
        apiserver.create_yaml(
            POD.format(name="e6").replace("    ports:\n    - containerPort: 8080\n", "")
        )
        apiserver.create_yaml(POD.format(name="e7").replace("  labels: {run: e7}\n", ""))
    result = apiserver.tk("expose", *args)
    assert result.exit_code == 1
    assert words in result.stderr
    no_traceback(result)
    assert not any(apiserver.exists("services", n) for n in ("e5", "e6", "e7", "x", "nope"))
