"""The API server (kube-apiserver), with the scheduler and controllers beside it."""
