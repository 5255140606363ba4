"""The Pod fields real manifests use, end to end through the codec (YAML in -> object ->
YAML out) and the server's defaulting (what Kubernetes fills in)."""

from __future__ import annotations

from typing import Any

from apimachinery import codec
from apiserver import defaults
from apiserver.auth import node as node_auth
from tests.unit.validation_fixtures import messages

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: fields
spec:
  volumes:
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
      - path: cpu
        resourceFieldRef:
          containerName: app
          resource: limits.cpu
          divisor: 1m
  - name: all
    projected:
      sources:
      - secret:
          name: creds
          items:
          - key: user
            path: user
      - configMap:
          name: settings
          optional: true
      - downwardAPI:
          items:
          - path: name
            fieldRef:
              fieldPath: metadata.name
  initContainers:
  - name: proxy
    image: busybox
    restartPolicy: Always
  containers:
  - name: app
    image: busybox
    envFrom:
    - prefix: CFG_
      configMapRef:
        name: settings
        optional: true
    - secretRef:
        name: creds
    env:
    - name: NODE
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    - name: MEM
      valueFrom:
        resourceFieldRef:
          resource: limits.memory
          divisor: 1Mi
    resources:
      limits:
        memory: 64Mi
    stdin: true
    stdinOnce: true
    tty: true
  dnsPolicy: None
  hostAliases:
  - ip: 10.1.2.3
    hostnames:
    - foo.local
    - bar
  dnsConfig:
    nameservers:
    - 10.0.0.53
    searches:
    - example.com
    options:
    - name: ndots
      value: '2'
    - name: edns0
  shareProcessNamespace: true
"""


def test_manifest_round_trip_yaml_in_object_yaml_out() -> None:
    [obj] = codec.decode_documents(MANIFEST, "fields.yaml")
    assert messages(obj) == []
    assert codec.to_yaml(obj) == MANIFEST
    assert codec.from_dict(codec.to_dict(obj)) == obj
    ctr = obj.spec.containers[0]  # type: ignore[attr-defined]
    assert ctr.env_from[0].config_map_ref.optional is True
    assert ctr.env[1].value_from.resource_field_ref.divisor == "1Mi"
    assert obj.spec.dns_config.options[1].HasField("value") is False  # type: ignore[attr-defined]


def test_a_numeric_divisor_decodes_as_a_quantity() -> None:
    text = MANIFEST.replace("divisor: 1Mi", "divisor: 1")
    [obj] = codec.decode_documents(text, "fields.yaml")
    assert obj.spec.containers[0].env[1].value_from.resource_field_ref.divisor == "1"  # type: ignore[attr-defined]


def test_defaults_kubernetes_fills_in() -> None:
    [obj] = codec.decode_documents(MANIFEST, "fields.yaml")
    obj.spec.dns_policy = ""  # type: ignore[attr-defined]
    defaults.apply_defaults(obj)
    spec: Any = obj.spec  # type: ignore[attr-defined]
    assert spec.dns_policy == "ClusterFirst"
    assert spec.volumes[0].downward_api.default_mode == 0o644
    assert spec.volumes[1].projected.default_mode == 0o644
    assert spec.volumes[0].downward_api.items[0].field_ref.api_version == "v1"
    assert spec.volumes[1].projected.sources[2].downward_api.items[0].field_ref.api_version == "v1"
    app = spec.containers[0]
    assert (app.termination_message_path, app.termination_message_policy) == (
        "/dev/termination-log",
        "File",
    )
    assert app.env[0].value_from.field_ref.api_version == "v1"
    app.env[1].value_from.resource_field_ref.ClearField("divisor")
    defaults.apply_defaults(obj)
    assert not app.env[1].value_from.resource_field_ref.divisor  # unset, as Kubernetes leaves it
    before = codec.to_dict(obj)
    defaults.apply_defaults(obj)
    assert codec.to_dict(obj) == before  # idempotent
    spec.volumes[0].downward_api.default_mode = 0o400
    defaults.apply_defaults(obj)
    assert spec.volumes[0].downward_api.default_mode == 0o400


def test_the_node_authorizer_lets_a_kubelet_read_what_env_from_names() -> None:
    [obj] = codec.decode_documents(MANIFEST, "fields.yaml")
    obj.spec.ClearField("volumes")  # type: ignore[attr-defined]  # only envFrom names them now
    assert node_auth._referenced(obj, "configmaps") == {"settings"}  # type: ignore[arg-type]
    assert node_auth._referenced(obj, "secrets") == {"creds"}  # type: ignore[arg-type]
