"""PodSpec validation: containers, ports, policies, resources, probes, volumes, env, tolerations."""

# Expected messages are Kubernetes' exact words, so some lines are long.
# ruff: noqa: E501
from __future__ import annotations

from tests.unit.validation_fixtures import (
    LABEL_MSG,
    LABEL_VALUE_MSG,
    SUBDOMAIN_MSG,
    container,
    messages,
    pod,
)

# ---------------------------------------------------------------- PodSpec


def test_pod_needs_containers_with_names_and_images() -> None:
    assert messages(pod(containers=[])) == ["spec.containers: Required value"]
    p = pod(
        containers=[{"name": "Web_1"}, {"name": "x", "image": "i"}, {"name": "x", "image": "i"}]
    )
    assert messages(p) == [
        f'spec.containers[0].name: Invalid value: "Web_1": {LABEL_MSG}',
        "spec.containers[0].image: Required value",
        'spec.containers[2].name: Duplicate value: "x"',
    ]
    p = pod(initContainers=[container()])
    assert messages(p) == ['spec.containers[0].name: Duplicate value: "web"']


def test_container_ports() -> None:
    p = pod(
        containers=[
            container(
                ports=[
                    {"containerPort": 70000},
                    {"containerPort": 0, "protocol": "HTTP"},
                    {"containerPort": 80, "name": "http", "hostPort": 70000},
                    {"containerPort": 81, "name": "http"},
                    {"containerPort": 82, "name": "Not--ok"},
                ]
            )
        ]
    )
    assert messages(p) == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].containerPort: Required value",
        'spec.containers[0].ports[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        "spec.containers[0].ports[2].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        'spec.containers[0].ports[3].name: Duplicate value: "http"',
        'spec.containers[0].ports[4].name: Invalid value: "Not--ok": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        'spec.containers[0].ports[4].name: Invalid value: "Not--ok": must not contain consecutive hyphens',
    ]


def test_policies() -> None:
    p = pod(
        restartPolicy="Sometimes",
        dnsPolicy="Google",
        containers=[container(imagePullPolicy="Maybe")],
    )
    assert messages(p) == [
        'spec.containers[0].imagePullPolicy: Unsupported value: "Maybe": supported values: "Always", "IfNotPresent", "Never"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"',
        'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"',
    ]
    assert messages(pod(restartPolicy="OnFailure", dnsPolicy="ClusterFirst")) == []


def test_resources() -> None:
    p = pod(
        containers=[
            container(
                resources={
                    "limits": {"cpu": "1", "memory": "lots"},
                    "requests": {"cpu": "2", "gpu": "1", "example.com/dongle": "1"},
                }
            )
        ]
    )
    assert messages(p) == [
        "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1',
    ]
    p = pod(
        containers=[container(resources={"limits": {"cpu": "-1"}, "requests": {"cpu": "1500m"}})]
    )
    assert messages(p) == [
        'spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0'
    ]
    ok = pod(
        containers=[
            container(
                resources={
                    "limits": {"cpu": "1", "memory": "1Gi"},
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                }
            )
        ]
    )
    assert messages(ok) == []


def test_probes() -> None:
    p = pod(
        containers=[
            container(
                livenessProbe={"periodSeconds": -1},
                readinessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
                startupProbe={"httpGet": {"port": 0}, "successThreshold": 2},
            )
        ]
    )
    assert messages(p) == [
        "spec.containers[0].livenessProbe: Required value: must specify a handler type",
        "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].startupProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.containers[0].startupProbe.successThreshold: Invalid value: 2: must be 1",
    ]
    ok = pod(
        containers=[
            container(livenessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5})
        ]
    )
    assert messages(ok) == []
    p = pod(containers=[container(livenessProbe={"exec": {}})])
    assert messages(p) == ["spec.containers[0].livenessProbe.exec.command: Required value"]


def test_volumes_and_mounts() -> None:
    p = pod(
        volumes=[
            {"name": "data", "emptyDir": {}},
            {"name": "data", "emptyDir": {}},
            {"name": "none"},
            {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}},
            {"name": "cm", "configMap": {}},
        ],
        containers=[
            container(
                volumeMounts=[
                    {"name": "data", "mountPath": "/data"},
                    {"name": "missing", "mountPath": "/data"},
                    {"name": "cm"},
                ]
            )
        ],
    )
    assert messages(p) == [
        'spec.volumes[1].name: Duplicate value: "data"',
        "spec.volumes[2]: Required value: must specify a volume type",
        "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[4].configMap.name: Required value",
        'spec.containers[0].volumeMounts[1].name: Not found: "missing"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique',
        "spec.containers[0].volumeMounts[2].mountPath: Required value",
    ]


def test_volume_paths_stay_inside_their_volume() -> None:
    p = pod(
        volumes=[
            {
                "name": "cm",
                "configMap": {
                    "name": "c",
                    "items": [
                        {"key": "a", "path": "/etc/evil"},
                        {"key": "b", "path": "../x"},
                        {"key": "c", "path": "..data"},
                        {"key": "d", "path": "ok/sub/file"},
                    ],
                },
            },
            {
                "name": "s",
                "secret": {"secretName": "s", "items": [{"key": "k", "path": "a/../../b"}]},
            },
        ],
        containers=[
            container(
                volumeMounts=[
                    {"name": "cm", "mountPath": "/a", "subPath": "/etc"},
                    {"name": "cm", "mountPath": "/b", "subPath": "x/../../y"},
                    {"name": "cm", "mountPath": "/c", "subPath": "conf/nginx.conf"},
                ]
            )
        ],
    )
    assert messages(p) == [
        'spec.volumes[0].configMap.items[0].path: Invalid value: "/etc/evil": must be a relative path',
        "spec.volumes[0].configMap.items[1].path: Invalid value: \"../x\": must not contain '..'",
        "spec.volumes[0].configMap.items[2].path: Invalid value: \"..data\": must not start with '..'",
        "spec.volumes[1].secret.items[0].path: Invalid value: \"a/../../b\": must not contain '..'",
        'spec.containers[0].volumeMounts[0].subPath: Invalid value: "/etc": must be a relative path',
        "spec.containers[0].volumeMounts[1].subPath: Invalid value: \"x/../../y\": must not contain '..'",
    ]


def test_security_contexts() -> None:
    p = pod(
        securityContext={
            "runAsUser": -1,
            "fsGroup": 2000,
            "supplementalGroups": [3000, -5],
            "seccompProfile": {"type": "Localhost"},
        },
        containers=[
            container(
                securityContext={
                    "privileged": True,
                    "allowPrivilegeEscalation": False,
                    "runAsGroup": 4294967296,
                    "seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "x.json"},
                }
            ),
            container(
                name="b",
                securityContext={
                    "capabilities": {"add": ["CAP_SYS_ADMIN"]},
                    "allowPrivilegeEscalation": False,
                    "seccompProfile": {"type": "Sometimes"},
                },
            ),
            container(
                name="c",
                securityContext={
                    "runAsUser": 1000,
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "../etc/p.json"},
                },
            ),
        ],
    )
    assert messages(p) == [
        "spec.containers[0].securityContext.runAsGroup: Invalid value: 4294967296: must be between 0 and 2147483647, inclusive",
        'spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "x.json": can only be set when seccomp type is Localhost',
        'spec.containers[0].securityContext: Invalid value: "privileged=true, allowPrivilegeEscalation=false": cannot set `allowPrivilegeEscalation` to false and `privileged` to true',
        'spec.containers[1].securityContext.seccompProfile.type: Unsupported value: "Sometimes": supported values: "Localhost", "RuntimeDefault", "Unconfined"',
        "spec.containers[1].securityContext: Invalid value: \"allowPrivilegeEscalation=false, capabilities.add=['CAP_SYS_ADMIN']\": cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
        "spec.containers[2].securityContext.seccompProfile.localhostProfile: Invalid value: \"../etc/p.json\": must not contain '..'",
        "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
        "spec.securityContext.supplementalGroups[1]: Invalid value: -5: must be between 0 and 2147483647, inclusive",
    ]


def test_env() -> None:
    p = pod(
        containers=[
            container(
                env=[
                    {"name": "1BAD"},
                    {
                        "name": "OK",
                        "value": "x",
                        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
                    },
                    {"name": "EMPTY", "valueFrom": {}},
                    {"name": ""},
                ]
            )
        ]
    )
    got = messages(p)
    assert got[0].startswith(
        'spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name'
    )
    assert got[1:] == [
        'spec.containers[0].env[1].valueFrom: Invalid value: "": may not be specified when `value` is not empty',
        'spec.containers[0].env[2].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`',
        "spec.containers[0].env[3].name: Required value",
    ]


def test_tolerations_and_node_selector() -> None:
    p = pod(
        tolerations=[
            {"key": "a", "operator": "Exists", "value": "x"},
            {"operator": "Equal", "value": "x"},
            {"key": "b", "effect": "Sometimes"},
            {"key": "c", "operator": "Like"},
            {"key": "d", "effect": "NoSchedule", "tolerationSeconds": 5},
        ],
        nodeSelector={"disk": "-ssd"},
    )
    assert messages(p) == [
        f'spec.nodeSelector: Invalid value: "-ssd": {LABEL_VALUE_MSG}',
        "spec.tolerations[0].value: Invalid value: \"x\": value must be empty when `operator` is 'Exists'",
        'spec.tolerations[1].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys"',
        'spec.tolerations[2].effect: Unsupported value: "Sometimes": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"',
        'spec.tolerations[3].operator: Unsupported value: "Like": supported values: "Equal", "Exists"',
        "spec.tolerations[4].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
    ]


def test_pod_deadline_and_names() -> None:
    p = pod(activeDeadlineSeconds=0, nodeName="Node_1")
    assert messages(p) == [
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        f'spec.nodeName: Invalid value: "Node_1": {SUBDOMAIN_MSG}',
    ]
