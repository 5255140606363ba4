"""The client's calls beyond the object verbs: binding, logs, exec, version, discovery, access,
traces.

Kubernetes reaches these through subresources (`pods/binding`, `pods/log`, `pods/exec`),
non-resource paths (`/version`, `/api`) and the SelfSubjectAccessReview
kind; here each is one RPC of the same service. They live beside
client.py's verbs as a mixin, so the Client stays one class to import.
Traces are the one exception: the span store is its own service
(`tinykube.trace.Traces`, protos/trace.proto) on the same channel.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from apimachinery import scheme, tracecontext
from apimachinery.channel import Connection
from protos import api_pb2, api_pb2_grpc, core_pb2, trace_pb2, trace_pb2_grpc

DEFAULT_NAMESPACE = "default"
T = TypeVar("T")


class ServerCalls:
    """Binding, logs, exec, version, discovery and access review (mixed into Client)."""

    timeout: float
    _connection: Connection

    def _resources(self) -> api_pb2_grpc.ResourcesStub:
        raise NotImplementedError

    async def _unary(self, make: Callable[[], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def bind(
        self,
        name: str,
        node: str,
        namespace: str = "",
        *,
        uid: str = "",
        annotations: dict[str, str] | None = None,
    ) -> core_pb2.Pod:
        """Bind a pod to a node (the pods/binding subresource); returns the bound pod.

        `uid` guards against binding a different pod that took the same name;
        `annotations` are merged into the pod in the same write.
        """
        binding = core_pb2.Binding(api_version="v1", kind="Binding")
        binding.metadata.name = name
        binding.metadata.namespace = namespace or DEFAULT_NAMESPACE
        binding.metadata.uid = uid
        binding.metadata.annotations.update(annotations or {})
        binding.target.kind = "Node"
        binding.target.name = node
        request = api_pb2.BindRequest(binding=binding, traceparent=tracecontext.outgoing())
        reply = await self._unary(lambda: self._resources().Bind(request, timeout=self.timeout))
        pod: core_pb2.Pod = scheme.unpack(reply)
        return pod

    async def pod_logs(
        self,
        name: str,
        namespace: str = "",
        *,
        container: str = "",
        follow: bool = False,
        previous: bool = False,
        tail: int | None = None,
        since_seconds: int | None = None,
        since_time: str = "",
        timestamps: bool = False,
    ) -> AsyncIterator[str]:
        """The pods/log subresource: a container's log lines, oldest first (kubectl logs).

        The apiserver proxies to the pod's kubelet. Without `follow` the
        iteration ends at the current end of the log; with it, once the
        container has exited for good (the kubelet follows it across restarts).
        `tail` keeps the last N lines only; `since_seconds` / `since_time`
        (RFC 3339) drop older lines; `timestamps` prefixes each line with its time.
        """
        request = api_pb2.PodLogsRequest(
            namespace=namespace or DEFAULT_NAMESPACE,
            name=name,
            container=container,
            follow=follow,
            previous=previous,
            since_time=since_time,
            timestamps=timestamps,
        )
        if tail is not None and tail >= 0:
            request.tail_lines = tail
        if since_seconds is not None:
            request.since_seconds = since_seconds
        call = self._resources().PodLogs(request)
        try:
            async for chunk in call:
                for line in chunk.lines:
                    yield line
        except grpc.aio.AioRpcError as exc:
            raise self._connection.error(exc) from None
        finally:
            call.cancel()

    async def pod_exec(
        self,
        name: str,
        command: builtins.list[str],
        namespace: str = "",
        *,
        container: str = "",
        timeout_seconds: int = 0,
    ) -> api_pb2.PodExecResponse:
        """The pods/exec subresource: run `command` in the container (CRI ExecSync).

        Returns stdout, stderr and the exit code; a command that fails is not
        an error (exit_code != 0). `timeout_seconds` 0 is the kubelet's default.
        """
        request = api_pb2.PodExecRequest(
            namespace=namespace or DEFAULT_NAMESPACE,
            name=name,
            container=container,
            command=command,
            timeout_seconds=timeout_seconds,
        )
        wait = None if timeout_seconds <= 0 else timeout_seconds + self.timeout
        reply: api_pb2.PodExecResponse = await self._unary(
            lambda: self._resources().PodExec(request, timeout=wait)
        )
        return reply

    async def version(self) -> api_pb2.VersionInfo:
        request = api_pb2.VersionRequest()
        reply: api_pb2.VersionInfo = await self._unary(
            lambda: self._resources().Version(request, timeout=self.timeout)
        )
        return reply

    async def server_resources(self) -> builtins.list[api_pb2.APIResource]:
        request = api_pb2.ServerResourcesRequest()
        reply = await self._unary(
            lambda: self._resources().ServerResources(request, timeout=self.timeout)
        )
        return list(reply.resources)

    async def access_review(
        self,
        verb: str,
        resource: str,
        *,
        subresource: str = "",
        namespace: str = "",
        name: str = "",
        path: str = "",
        user: str = "",
        groups: Sequence[str] = (),
    ) -> tuple[bool, str]:
        """Would the caller be allowed this request (`tinykube auth can-i`), and why not.

        The server answers for the identity that asks, or for `user` in `groups`
        when the caller may impersonate them (kubectl's --as, --as-group).
        """
        request = api_pb2.AccessReviewRequest(
            verb=verb,
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
            path=path,
            user=user,
            groups=list(groups),
        )
        reply: api_pb2.AccessReviewResponse = await self._unary(
            lambda: self._resources().AccessReview(request, timeout=self.timeout)
        )
        return reply.allowed, reply.reason

    async def get_trace(
        self,
        *,
        trace_id: str = "",
        resource: str = "",
        name: str = "",
        namespace: str = "",
        last: bool = False,
    ) -> trace_pb2.Trace:
        """One trace from the API server's span store: by id, by the object whose last traced
        change it is (`resource`, `name`), or the latest (`tinykube trace`; apiserver/traces.py).

        Needs `get` on the non-resource path /traces (and, by object, on the object).
        """
        request = trace_pb2.GetTraceRequest(trace_id=trace_id, last=last)
        if resource:
            request.object.CopyFrom(
                trace_pb2.ObjectRef(resource=resource, namespace=namespace, name=name)
            )
        stub = trace_pb2_grpc.TracesStub(self._connection.channel())
        reply: trace_pb2.Trace = await self._unary(lambda: stub.Get(request, timeout=self.timeout))
        return reply

    async def list_traces(self, limit: int = 20) -> builtins.list[trace_pb2.TraceSummary]:
        """The traces the span store holds, the latest started first."""
        stub = trace_pb2_grpc.TracesStub(self._connection.channel())
        request = trace_pb2.ListTracesRequest(limit=limit)
        reply = await self._unary(lambda: stub.List(request, timeout=self.timeout))
        return list(reply.traces)
