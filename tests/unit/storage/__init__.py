"""Storage tests: the shared conformance suite and one module per backend."""
