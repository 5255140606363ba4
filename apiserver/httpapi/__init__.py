"""Kubernetes' own HTTP API, served beside the gRPC API over the same registry.

kubectl, client-go and the official Python client speak REST over HTTP/1.1
to `https://HOST:6443`. tinykube serves that API on the same port as its
gRPC API (the TLS front routes each connection by the protocol its
handshake negotiated, apimachinery/tlsfront.py) and with the same parts
behind it: authentication, the Node and RBAC authorizers, the store and
its strategies, validation and admission. Only the wire format differs.

    http.py          HTTP/1.1 on asyncio: keep-alive, body limits, chunked streams, upgrades
    api.py           the front door: health, authentication, routing, errors as Status
    requestinfo.py   URL + method -> verb, group, resource, namespace, name, subresource
    context.py       an HTTP request as the gRPC context the guard and servicer read
    call.py          one resource request on its way through the handlers
    status.py        Kubernetes Status objects and HTTP codes for every error
    discovery.py     /version, /api, /apis, APIResourceLists
    openapi*.py      /openapi/v3 generated from the protobuf descriptors
    fieldsets.py     managed fields: which manager owns which field
    resources.py     get, create, update, delete, deletecollection
    lists.py         list: selectors, limit/continue, resourceVersion
    watchstream.py   watch: chunked JSON events, bookmarks, 410 Expired
    patching.py      json, merge and strategic merge patches
    applier.py       server-side apply: field managers and conflicts
    body.py          request bodies: JSON, YAML, Kubernetes protobuf
    kubeproto*.py    Kubernetes' protobuf envelope, read through a table of its field numbers
    subresources.py  status, scale, binding, log
    eviction.py      pods/eviction (kubectl drain)
    streams.py       pods/exec, pods/attach, pods/portforward: the upgrade, then
                     remotecommand.py + execstreams.py (exec channels) or portforward.py
    websocket.py     RFC 6455 framing (kubectl's default for exec and port-forward)
    spdy*.py         SPDY/3.1 framing and sessions (the fallback, and port-forward's tunnel)
    metrics.py       metrics.k8s.io/v1beta1 (kubectl top), from the kubelets' Summary
    reviews.py       SelfSubjectAccessReview (auth can-i), SelfSubjectReview (auth whoami)
    table*.py        Tables for kubectl get (server-side printing)

docs/http-api.md says what is served and what is not yet.
"""
