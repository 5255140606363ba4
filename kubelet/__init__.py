"""The kubelet: the node agent (placeholder docstring, completed with kubelet.py)."""
