"""Admission: the checks a write passes after validation and before storage.

Kubernetes runs a chain of admission plugins on every write; tinykube keeps
the ones its users meet, in this order (registry/kinds.py builds the chain):

    namespacelifecycle.py    no new objects in a missing or terminating namespace
    podsecurityadmission.py  the Pod Security Standards per namespace label:
                             enforce (refuse), warn (tell the client), audit (log)
    podsecurity.py           the standards' checks themselves, pure functions
    warnings.py              how a warning travels from a plugin to the client

A plugin sees the object after defaulting and validation, so it judges what
would be stored, and it may read storage (never a cache: admission must see
a namespace's deletion or new labels the moment they are stored).
"""
