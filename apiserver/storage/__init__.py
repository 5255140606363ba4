"""Revisioned key-value storage under the API server (Kubernetes' storage.Interface)."""
