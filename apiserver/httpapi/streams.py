"""pods/exec, pods/attach and pods/portforward: the requests that become connections.

These three subresources are not answered with a body: kubectl asks to
switch the connection to a streaming protocol, and the API server says yes
(101 Switching Protocols) only after the same checks as any request, in
Kubernetes' order (its ExecREST, AttachREST and PortForwardREST):

    1. authentication (api.py: 401 before anything is upgraded)
    2. authorization: `create` on pods/exec, pods/attach, pods/portforward,
       whether the request is a POST (SPDY) or a GET (a WebSocket must be a
       GET): Kubernetes 1.30+ checks `create` for both, so a role that may
       only `get` pods/exec cannot exec over a WebSocket either
    3. the options (exec: command, container, stdin, stdout, stderr, tty)
    4. the protocol: a WebSocket with a subprotocol both sides speak, else
       SPDY/3.1 with an X-Stream-Protocol-Version both sides speak, else 400
       `Upgrade request required`
    5. exec: the relay to the kubelet is opened (apiserver/proxy_streams.py),
       which finds the pod, its container and its node and starts the process;
       port-forward: the pod is looked up (each forwarded connection opens
       its own relay later, per port)
    6. 101, and the connection belongs to execstreams.py or portforward.py

Any failure up to step 5 is an ordinary Status (403, 404, 400, 503), which
client-go reports as `Error from server (...)`. kubectl 1.30+ tries a
WebSocket first and falls back to SPDY when that upgrade fails: so a refused
request is seen twice in the log, once per protocol, as with Kubernetes.

    kubectl exec web -- cat /etc/nginx/nginx.conf
        GET .../pods/web/exec?command=cat&command=%2Fetc%2Fnginx%2Fnginx.conf
            &container=web&stderr=true&stdout=true
        Upgrade: websocket, Sec-WebSocket-Protocol: v5.channel.k8s.io
    kubectl port-forward pod/web 8080:80
        GET .../pods/web/portforward
        Upgrade: websocket, Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io

pods/attach (joining the main process's own stdin and output) has no relay
to a kubelet in tinykube: it is authorized, then refused with 405 and a
message saying so.
"""

from __future__ import annotations

import asyncio
from typing import Any

from apimachinery import errors, scheme
from apiserver.auth.authorizer import UserInfo
from apiserver.httpapi import execstreams, portforward, spdysession, websocket
from apiserver.httpapi import remotecommand as rc
from apiserver.httpapi.call import Call
from apiserver.httpapi.http import Request, Response, Upgrade
from apiserver.httpapi.status import MethodNotAllowed
from protos import kubelet_pb2

SPDY = "SPDY/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
SUBRESOURCES = ("exec", "attach", "portforward")


def exec_options(request: Request) -> rc.ExecOptions:
    """PodExecOptions from the query; BadRequest in Kubernetes' words when unusable."""
    command = tuple(request.query.get("command", []))
    if not command:
        raise errors.BadRequest("you must specify at least 1 command")
    tty = request.flag("tty")
    options = rc.ExecOptions(
        command=command,
        container=request.param("container"),
        stdin=request.flag("stdin"),
        stdout=request.flag("stdout"),
        stderr=request.flag("stderr") and not tty,  # a terminal merges stderr into stdout
        tty=tty,
    )
    if not (options.stdin or options.stdout or options.stderr):
        raise errors.BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    return options


def _tokens(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def is_spdy(request: Request) -> bool:
    connection = [t.lower() for t in _tokens(request.headers.get("connection", ""))]
    return "upgrade" in connection and request.headers.get("upgrade", "").lower() == "spdy/3.1"


def spdy_handshake(request: Request, supported: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """(the protocol, the 101's headers) for a SPDY upgrade; the client's order decides."""
    offered = _tokens(request.headers.get(PROTOCOL_HEADER.lower(), ""))
    if not offered:
        raise errors.BadRequest(f"unable to upgrade: {PROTOCOL_HEADER} is required")
    chosen = next((p for p in offered if p in supported), None)
    if chosen is None:
        raise errors.Forbidden(
            "unable to upgrade: unable to negotiate protocol: client supports"
            f" [{' '.join(offered)}], server accepts [{' '.join(supported)}]"
        )
    headers = [("Connection", "Upgrade"), ("Upgrade", SPDY), (PROTOCOL_HEADER, chosen)]
    return chosen, headers


def _upgrade_required() -> errors.BadRequest:
    return errors.BadRequest("Upgrade request required")


async def serve(call: Call) -> Response:
    """The 101 for exec or portforward (or the Status that refuses it)."""
    if call.request.method not in ("GET", "POST"):
        raise MethodNotAllowed(f"the server does not allow this method on {call.info.path}")
    sub = call.info.subresource
    user = await call.authorize("create")
    if sub == "exec":
        return await _exec(call, user)
    if sub == "portforward":
        return await _portforward(call, user)
    raise MethodNotAllowed(
        "pods/attach is not supported by this server: its kubelets have no attach stream"
        " (kubectl exec runs a new process instead)"
    )


async def _exec(call: Call, user: UserInfo) -> Response:
    request = call.request
    options = exec_options(request)
    if websocket.is_upgrade(request.headers):
        protocol, headers = websocket.handshake(request.method, request.headers, rc.PROTOCOLS)
    elif is_spdy(request):
        protocol, headers = spdy_handshake(request, rc.PROTOCOLS)
    else:
        raise _upgrade_required()
    start = options.start(call.info.namespace, call.info.name)
    stream = await call.backend.servicer.open_exec_stream(user, start)

    async def upgraded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if websocket.is_upgrade(request.headers):
            await execstreams.serve_websocket(reader, writer, stream, options, protocol)
        else:
            conduit = spdysession.StreamConduit(reader, writer)
            await execstreams.serve_spdy(conduit, stream, options, protocol)

    return Response(101, headers=headers, upgrade=upgraded)


async def _portforward(call: Call, user: UserInfo) -> Response:
    request = call.request
    if websocket.is_upgrade(request.headers):
        _, headers = websocket.handshake(
            request.method, request.headers, [portforward.TUNNEL_PROTOCOL]
        )
    elif is_spdy(request):
        _, headers = spdy_handshake(request, [portforward.PROTOCOL])
    else:
        raise _upgrade_required()
    pods = scheme.for_resource("pods")
    pod = await call.backend.store.get(pods, call.info.namespace, call.info.name)
    if not pod.spec.node_name:
        raise errors.BadRequest(f"pod {call.info.name} does not have a host assigned")
    name, uid = pod.metadata.name, pod.metadata.uid

    async def open_port(port: int) -> Any:
        start = kubelet_pb2.PortForwardStart(
            namespace=call.info.namespace, pod=name, pod_uid=uid, port=port
        )
        return await call.backend.servicer.open_port_forward(user, start)

    upgraded: Upgrade
    if websocket.is_upgrade(request.headers):

        async def upgraded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            ws = websocket.WebSocket(reader, writer)
            try:
                await portforward.serve(websocket.MessageConduit(ws), open_port, name, uid)
            finally:
                await ws.close()

    else:

        async def upgraded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await portforward.serve(spdysession.StreamConduit(reader, writer), open_port, name, uid)

    return Response(101, headers=headers, upgrade=upgraded)
