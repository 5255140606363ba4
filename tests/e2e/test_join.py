"""A node joins with a bootstrap token, as node2 of the Vagrant cluster does (provision/node.sh).

The control plane is an API server process secured by its own PKI; the new node is node9,
a hollow kubelet that starts without any client certificate. The steps are the
provisioning's, through the real binaries:

    control plane   tinykube token create                  (the admin, over mTLS)
                    pki init's serving certificate for node9, and the CA, handed over
    node9           tinykube join HOST:TOKEN_PORT --token T
                        --discovery-token-ca-cert-hash sha256:H --node-name node9
                        --out DIR/bootstrap-kubelet.conf
                    tinykube kubelet ... --kubeconfig DIR/kubelet.conf
                        --bootstrap-kubeconfig DIR/bootstrap-kubelet.conf   (render-config's
                        flags for a --tls-bootstrap node: localcluster/pki.kubelet_args)

The kubelet sends a CSR with the token, the control plane approves and signs it, and the
kubelet writes DIR/kubelet.conf and registers node9 as system:node:node9. A join whose
pin does not match the server's CA stops before the token is sent.

The kubelet's own kubeconfig names the bootstrap host's port 6443 (the convention pki
init and the API server share), so the server listens on 6443 of an address of its own
in 127.0.0.0/8, out of the way of anything on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery import certs, kubeconfig
from apimachinery.client import Client
from localcluster import pki
from localcluster.pki import PkiLayout
from localcluster.processes import ApiServerProcess, ChildProcess
from protos import core_pb2, meta_pb2
from tests.e2e.hollow import FAST_KUBELET
from tests.procs import run_cli

pytestmark = pytest.mark.timeout(120)


def loopback_with_free_6443() -> str:
    """An address in 127.0.0.0/8 whose port 6443 is free (one per test process)."""
    for n in range(200):
        host = f"127.{(os.getpid() >> 8) % 250 + 1}.{os.getpid() % 250}.{n + 2}"
        with socket.socket() as s:
            try:
                s.bind((host, pki.APISERVER_PORT))
            except OSError:
                continue
            return host
    pytest.skip("no loopback address with a free port 6443")


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServerProcess]:
    server = ApiServerProcess(
        tmp_path / "apiserver", port=pki.APISERVER_PORT, host=loopback_with_free_6443()
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def hand_over(apiserver: ApiServerProcess, node: str, directory: Path) -> PkiLayout:
    """What the control plane's provisioning copies to a worker: the CA and the node's
    serving certificate (made by pki init, which knows the node's address)."""
    apiserver.add_node(node)
    source, target = apiserver.pki, PkiLayout(str(directory))
    Path(target.ca_cert).parent.mkdir(parents=True, mode=0o700)
    pairs = zip(source.kubelet_serving(node), target.kubelet_serving(node), strict=True)
    for path, copy in ((source.ca_cert, target.ca_cert), *pairs):
        shutil.copy2(path, copy)
    return target


def test_a_node_joins_with_a_bootstrap_token(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    layout = hand_over(apiserver, "node9", tmp_path / "node9")
    created = run_cli(apiserver, "token", "create")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    join = ["join", apiserver.token_address, "--token", token, "--node-name", "node9"]
    wrong_out = layout.bootstrap_kubelet_conf + ".wrong"
    pin = ["--discovery-token-ca-cert-hash", "sha256:" + "0" * 64, "--out", wrong_out]
    wrong = run_cli(apiserver.address, *join, *pin)
    assert wrong.returncode == 1 and not Path(wrong_out).exists(), wrong.stderr
    ca_hash = certs.ca_hash(certs.read_cert(layout.ca_cert))
    pin = ["--discovery-token-ca-cert-hash", ca_hash, "--out", layout.bootstrap_kubelet_conf]
    joined = run_cli(apiserver.address, *join, *pin)
    assert joined.returncode == 0, joined.stderr
    assert not Path(layout.joined_kubelet_conf).exists()
    cert_dir = str(tmp_path / "node9" / "certs")
    flags = pki.kubelet_args(layout, "node9", bootstrap=True, cert_dir=cert_dir)
    hollow = ["--runtime", "fake", "--node-ip", apiserver.host, "--kubelet-port", "0"]
    kubelet = ChildProcess(
        ["kubelet", "--node-name", "node9", *hollow, *flags, *FAST_KUBELET],
        tmp_path / "node9" / "kubelet.log",
    )
    kubelet.spawn()
    try:
        wait_ready(apiserver, "node9", kubelet)
        runs_a_pod(apiserver, "node9", kubelet)
    finally:
        kubelet.stop()
    written = kubeconfig.load(layout.joined_kubelet_conf)
    assert written.target == apiserver.secure_address  # the mTLS port, not the token's
    assert written.cert_pem is not None
    identity = certs.identity(certs.load_cert_pem(written.cert_pem))
    assert (identity.user, identity.groups) == ("system:node:node9", ("system:nodes",))


def wait_ready(apiserver: ApiServerProcess, node: str, kubelet: ChildProcess) -> None:
    async def ready() -> bool:
        async with Client(apiserver.address, timeout=5) as client:
            nodes, _ = await client.list(core_pb2.Node)
        return any(
            n.metadata.name == node
            and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
            for n in nodes
        )

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if asyncio.run(ready()):
            return
        time.sleep(0.3)
    raise AssertionError(f"{node} not Ready:\n{kubelet.log.read_text()[-3000:]}")


def runs_a_pod(apiserver: ApiServerProcess, node: str, kubelet: ChildProcess) -> None:
    """A pod bound to the joined node runs there: the node's own identity reports it."""

    async def create() -> None:
        pod = core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="on-the-new-node"))
        pod.spec.node_name = node
        pod.spec.containers.add(name="c", image="busybox")
        async with Client(apiserver.address, timeout=5) as client:
            await client.create(pod)

    async def phase() -> str:
        async with Client(apiserver.address, timeout=5) as client:
            return (await client.get(core_pb2.Pod, "on-the-new-node")).status.phase

    asyncio.run(create())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if asyncio.run(phase()) == "Running":
            return
        time.sleep(0.3)
    raise AssertionError(f"the pod on {node} never ran:\n{kubelet.log.read_text()[-3000:]}")
