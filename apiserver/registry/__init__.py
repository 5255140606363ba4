"""The registry: what the API server does to an object between the wire and the store.

Kubernetes splits this into a generic store (pkg/registry/generic/registry)
that every kind shares and a per-kind strategy (pkg/registry/<group>/<kind>/
strategy.go) holding what differs. tinykube keeps the same split:

    strategy.py   per-kind hooks: status reset on create, spec/status split, generation
    store.py      the generic verbs: create, get, list, update, delete over Storage
    apply.py      apply: create, or merge a manifest into the stored object
    watch.py      watch: storage events -> API events, filtered by selectors
    services.py   ClusterIP / NodePort bookkeeping around Service writes
    namespaces.py namespace lifecycle: existence, termination, the default namespaces
"""
