"""Shared objects and expected messages for the validation tests."""

# Expected messages are Kubernetes' exact words, so some lines are long.

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from apimachinery import codec, validation
from protos import apps_pb2, core_pb2

REPO = Path(__file__).resolve().parents[2]

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)

DEPLOYMENT: dict[str, Any] = yaml.safe_load(
    """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:latest
        ports: [{containerPort: 80}]
"""
)


def deployment(**spec: Any) -> apps_pb2.Deployment:
    data = yaml.safe_load(yaml.safe_dump(DEPLOYMENT))
    data["spec"].update(spec)
    return codec.from_dict(data)  # type: ignore[return-value]


def pod(**spec: Any) -> core_pb2.Pod:
    base: dict[str, Any] = {"containers": [{"name": "web", "image": "nginx"}]}
    base.update(spec)
    data = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": base}
    return codec.from_dict(data)  # type: ignore[return-value]


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx", **fields}


def service(**spec: Any) -> core_pb2.Service:
    base: dict[str, Any] = {"ports": [{"port": 80}], "selector": {"app": "web"}}
    base.update(spec)
    data = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": base}
    return codec.from_dict(data)  # type: ignore[return-value]


def obj(data: dict[str, Any]) -> Any:
    return codec.from_dict(data)


def messages(o: Any) -> list[str]:
    return [str(e) for e in validation.validate_object(o)]


def update_messages(new: Any, old: Any) -> list[str]:
    return [str(e) for e in validation.validate_update(new, old)]
