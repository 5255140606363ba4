"""A whole cluster on one host (kind's counterpart): today the demo that `make demo` runs."""
