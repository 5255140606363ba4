"""Fault points: named places where a kubelet started for a fault test pauses.

Some faults matter only at one instant. "The kubelet dies after the pod's
sandbox exists but before its container does" cannot be hit by killing the
kubelet at a random time: the window is a few milliseconds wide. A fault
test therefore starts the kubelet with a fault point armed; the kubelet
stops there and says so, the test injects the fault (kill -9 the kubelet,
restart containerd or dockerd), and then lets it go on. Kubernetes has no
such seam -- its tests of this kind use fakes -- so this module is
tinykube's own, and it exists for those tests alone (tests/e2e/
test_midcreation_faults.py). Production never sets its variables, and
without them every call returns at once.

Arming, through the kubelet process's environment:

    TINYKUBE_FAULTPOINTS=after-sandbox[,after-create]   the points that pause
    TINYKUBE_FAULTPOINT_DIR=/some/dir                  where the handshake files go

The points (where kuberuntime_manager.py calls `reached`, one line each):

    after-sandbox   RunPodSandbox has returned (the sandbox is READY, its
                    veth and IP exist); no container has been created yet
    after-create    CreateContainer has returned; StartContainer not yet called

The handshake, for pod default/web at after-sandbox:

    kubelet:  writes DIR/after-sandbox.default.web.reached  (its pid inside)
    kubelet:  waits, polling every 0.05 s, for DIR/after-sandbox.default.web.release
    test:     sees .reached, injects its fault (the kubelet may die right here)
    test:     creates .release -> the kubelet removes .reached and goes on

A release is sticky: while the .release file exists, later passes of the
same pod through the point (a retried sync making a new sandbox) do not
stop. The test removes the directory when it is done.

What it can and cannot do: it only pauses one pod's sync, in place,
for as long as the test wants. It changes no decision, grants no
permission, opens no port and reads nothing but the existence of the
release file, so an armed kubelet behaves exactly as an unarmed one,
only later. A point not named in TINYKUBE_FAULTPOINTS costs one dict
lookup. The variables are read on each call (cheap: a fault test may
start several kubelets with different ones), and an armed point with no
directory is a configuration error, raised as FaultPointError so the
test's mistake is not silently ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from protos import core_pb2

log = logging.getLogger(__name__)

ENV_POINTS = "TINYKUBE_FAULTPOINTS"
ENV_DIR = "TINYKUBE_FAULTPOINT_DIR"
POLL_INTERVAL = 0.05  # seconds between looks for the release file

AFTER_SANDBOX = "after-sandbox"
AFTER_CREATE = "after-create"
KNOWN = (AFTER_SANDBOX, AFTER_CREATE)


class FaultPointError(RuntimeError):
    """The fault-point environment is wrong (an unknown point, no directory)."""


def armed() -> set[str]:
    """The points named in $TINYKUBE_FAULTPOINTS; an unknown name is an error."""
    names = {n.strip() for n in os.environ.get(ENV_POINTS, "").split(",") if n.strip()}
    unknown = sorted(names - set(KNOWN))
    if unknown:
        raise FaultPointError(
            f"{ENV_POINTS} names unknown fault points {', '.join(unknown)} "
            f"(known: {', '.join(KNOWN)})"
        )
    return names


def file_stem(name: str, pod: core_pb2.Pod) -> str:
    """`after-sandbox.default.web`: the handshake files' name without the suffix."""
    return f"{name}.{pod.metadata.namespace}.{pod.metadata.name}"


def reached_path(directory: Path, name: str, pod: core_pb2.Pod) -> Path:
    return directory / f"{file_stem(name, pod)}.reached"


def release_path(directory: Path, name: str, pod: core_pb2.Pod) -> Path:
    return directory / f"{file_stem(name, pod)}.release"


async def reached(name: str, pod: core_pb2.Pod) -> None:
    """Pause here if the point `name` is armed, until the test releases this pod."""
    if name not in KNOWN:
        raise FaultPointError(f"unknown fault point {name!r} (known: {', '.join(KNOWN)})")
    if not os.environ.get(ENV_POINTS) or name not in armed():
        return
    where = os.environ.get(ENV_DIR, "")
    if not where:
        raise FaultPointError(f"{ENV_POINTS} arms {name} but {ENV_DIR} is not set")
    directory = Path(where)
    mark, release = reached_path(directory, name, pod), release_path(directory, name, pod)
    if release.exists():
        return
    mark.write_text(f"{os.getpid()}\n")
    log.warning(
        "paused at fault point",
        extra={"point": name, "pod": f"{pod.metadata.namespace}/{pod.metadata.name}"},
    )
    while not release.exists():
        await asyncio.sleep(POLL_INTERVAL)
    mark.unlink(missing_ok=True)  # the release stays: later passes go through
    log.warning(
        "released from fault point",
        extra={"point": name, "pod": f"{pod.metadata.namespace}/{pod.metadata.name}"},
    )
