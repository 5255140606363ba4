"""The registry: what the API server does to an object between the wire and the store.

Kubernetes splits this into a generic store (pkg/registry/generic/registry)
that every kind shares and a per-kind strategy (pkg/registry/<group>/<kind>/
strategy.go) holding what differs. tinykube keeps the same split:

    store.py      the generic verbs: create, get, list, update, delete over Storage;
                  names no kind, calls the strategy's hooks
    strategy.py   the strategy interface (RESTStrategy: hooks for create, update,
                  delete, start) and the default every other kind gets
    pods.py       Pod: default tolerations, graceful deletion
    services.py   Service: ClusterIP / NodePort allocation, kept, released, rebuilt
    namespaces.py Namespace: built-in namespaces, the `kubernetes` finalizer,
                  Terminating, removal once finalized and empty
    kinds.py      which kind gets which strategy; the admission chain (its plugins,
                  NamespaceLifecycle and PodSecurity, are in apiserver/admission/)
    apply.py      apply: create, or merge a manifest into the stored object
    binding.py    pods/binding: the scheduler's decision, in one compare-and-swap
    watch.py      watch: storage events -> API events, filtered by selectors

Emptying a deleted namespace is not here: that is the namespace controller's
job (controllers/namespace.py), as in Kubernetes.
"""
