"""Shared machinery of every tinykube component (k8s.io/apimachinery + client-go).

scheme     the kinds: message classes, resources, short names, scopes
errors     Kubernetes' status reasons as Python exceptions and gRPC codes
codec      strict YAML/JSON <-> message conversion with field paths
validation object validation with Kubernetes' wording
labels, fields  label and field selectors
client     the async gRPC client every component uses
informer   list + watch + relist caches; workqueue: the reconcile queue
"""
