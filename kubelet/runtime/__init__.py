"""Container runtimes, registered by name: `--runtime fake|containerd|docker`.

Each runtime module registers a factory under its name; the kubelet asks
`new_runtime(name, **options)` and gets a ContainerRuntime (interface.py)
without importing the module itself. Imports are lazy, so the Docker SDK or
the CRI stubs are loaded only on a node that uses them:

    _FACTORIES = {"fake": "kubelet.runtime.fake:FakeRuntime", ...}

To add a runtime (as containerd over CRI and Docker through its SDK were
added), write a module with a ContainerRuntime subclass and add one line to
_FACTORIES, or call `register(name, factory)` at run time (tests do, with
their own fakes).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from kubelet.errors import UnknownRuntime
from kubelet.runtime.interface import ContainerRuntime

RuntimeFactory = Callable[..., ContainerRuntime]

# name -> "module:attribute", imported on first use.
_FACTORIES: dict[str, str] = {
    "fake": "kubelet.runtime.fake:FakeRuntime",
    "containerd": "kubelet.runtime.cri:CRIRuntime",
    "docker": "kubelet.runtime.docker:DockerRuntime",
}
_REGISTERED: dict[str, RuntimeFactory] = {}


def register(name: str, factory: RuntimeFactory) -> None:
    _REGISTERED[name] = factory


def names() -> list[str]:
    return sorted(set(_FACTORIES) | set(_REGISTERED))


def new_runtime(name: str, **options: object) -> ContainerRuntime:
    """A runtime by name, made with `options` (its constructor's keywords); UnknownRuntime
    lists the known names."""
    factory = _REGISTERED.get(name)
    if factory is None:
        target = _FACTORIES.get(name)
        if target is None:
            raise UnknownRuntime(
                f"unknown container runtime {name!r} (known: {', '.join(names())})"
            )
        module_name, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        _REGISTERED[name] = factory
    return factory(**options)


__all__ = ["ContainerRuntime", "names", "new_runtime", "register"]
