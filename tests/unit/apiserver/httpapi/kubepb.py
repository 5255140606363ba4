"""Kubernetes' protobuf bodies written by hand, byte by byte, as client-go's Go code writes them.

The API server's reader (apiserver/httpapi/kubeproto.py) must not be what
checks itself, so these bodies are composed here from the wire format and
Kubernetes' field numbers (k8s.io/api generated.proto), independently of it:

    key      varint(number << 3 | wire type): 0 varint, 2 length-delimited
    string   key(n, 2) + varint(len) + UTF-8 bytes
    message  key(n, 2) + varint(len) + the message's fields
    map      one message {1: key, 2: value} per entry

and, as Go's generated marshallers do, every field that is not a Go pointer is
written even when it is zero (an ObjectMeta always carries `selfLink: ""` and
an empty creationTimestamp), which is what the reader must see through.
"""

from __future__ import annotations

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negatives as Go writes them: 64-bit two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def string(number: int, text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return key(number, 2) + varint(len(data)) + data


def integer(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def boolean(number: int, value: bool) -> bytes:
    return integer(number, int(value))


def message(number: int, *fields: bytes) -> bytes:
    return string(number, b"".join(fields))


def entry(number: int, name: str, value: str | bytes) -> bytes:
    """One map entry, as Go writes map<string, string> and map<string, bytes>."""
    return message(number, string(1, name), string(2, value))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """The body: magic, then runtime.Unknown{typeMeta, raw, contentEncoding, contentType}."""
    type_meta = message(1, string(1, api_version), string(2, kind))
    return MAGIC + type_meta + string(2, raw) + string(3, "") + string(4, "")


def object_meta(number: int, name: str, namespace: str = "", **labels: str) -> bytes:
    """ObjectMeta as Go marshals a fresh one: the non-pointer fields all present."""
    return message(
        number,
        string(1, name),
        string(2, ""),  # generateName
        string(3, namespace),
        string(4, ""),  # selfLink
        string(5, ""),  # uid
        string(6, ""),  # resourceVersion
        integer(7, 0),  # generation
        message(8),  # creationTimestamp: the zero Time, an empty message
        *(entry(11, k, v) for k, v in sorted(labels.items())),
    )


def container(number: int, name: str, image: str, resources: bytes = b"") -> bytes:
    """A Container as `kubectl create deployment --image` builds it, zeros included;
    `resources` the fields of its ResourceRequirements."""
    return message(
        number,
        string(1, name),
        string(2, image),
        string(5, ""),  # workingDir
        message(8, resources),  # ResourceRequirements, written even when empty
        string(13, ""),  # terminationMessagePath
        string(14, ""),  # imagePullPolicy
        boolean(16, False),  # stdin
        boolean(17, False),  # stdinOnce
        boolean(18, False),  # tty
        string(20, ""),  # terminationMessagePolicy
    )


def pod_spec(number: int, *containers: bytes, extra: tuple[bytes, ...] = ()) -> bytes:
    return message(
        number,
        *containers,
        string(3, ""),  # restartPolicy
        string(6, ""),  # dnsPolicy
        string(8, ""),  # serviceAccountName
        string(9, ""),  # serviceAccount
        string(10, ""),  # nodeName
        boolean(11, False),  # hostNetwork
        boolean(12, False),  # hostPID
        boolean(13, False),  # hostIPC
        string(16, ""),  # hostname
        string(17, ""),  # subdomain
        string(19, ""),  # schedulerName
        string(24, ""),  # priorityClassName
        *extra,
    )


def deployment(
    name: str,
    replicas: int | None = 1,
    spec_extra: tuple[bytes, ...] = (),
    pod_extra: tuple[bytes, ...] = (),
) -> bytes:
    """`kubectl create deployment NAME --image nginx:latest`'s Deployment (raw, no envelope),
    with more fields for its DeploymentSpec and its pod template's PodSpec if given."""
    labels = {"app": name}
    spec = [
        *([integer(1, replicas)] if replicas is not None else []),
        message(2, entry(1, "app", name)),  # selector: LabelSelector{matchLabels}
        message(
            3,  # template: PodTemplateSpec
            object_meta(1, "", **labels),
            pod_spec(2, container(2, "nginx", "nginx:latest"), extra=pod_extra),
        ),
        message(4, string(1, "")),  # strategy: DeploymentStrategy{type: ""}
        integer(5, 0),  # minReadySeconds
        boolean(7, False),  # paused
        *spec_extra,
    ]
    status = message(3, *(integer(n, 0) for n in (1, 2, 3, 4, 5, 7)))
    return object_meta(1, name, **labels) + message(2, *spec) + status
