"""Admission: the checks a write passes after validation and before storage.

Kubernetes runs a chain of admission plugins on every write; tinykube keeps
the ones its users meet: the namespace lifecycle (no new objects in a
namespace that is missing or terminating) and Pod Security (podsecurity.py).
"""
