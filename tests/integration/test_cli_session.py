"""The issue's user session and its bad input, typed through the real `tinykube` binary.

One API server process for the module, without scheduler and controllers (this is the API's
own contract; the control plane has its own tests), so that nothing but the CLI writes: each test
drives the CLI as a user does and checks the exit code, the words printed, and (for bad input)
that the store's revision did not move. The CLI is a user on another machine: the admin's
kubeconfig over mutual TLS ($KUBECONFIG, as `tinykube pki init` wrote it); without it the
server's TCP ports let nothing through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import REPO, ApiServerProcess, run_cli

SEED = REPO / "examples" / "web-app.yaml"
SEED_TEXT = SEED.read_text()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    server = ApiServerProcess(
        tmp_path_factory.mktemp("cli") / "data",
        extra_args=("--no-scheduler", "--no-controllers"),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def revision(srv: ApiServerProcess) -> str:
    async def read() -> str:
        async with srv.client() as c:  # the admin over mTLS, as the CLI
            return (await c.list("namespaces"))[1]

    return asyncio.run(read())


def test_seed_file_is_the_seed_manifest() -> None:
    shared = REPO.parent / "shared" / "seed" / "web-app.yaml"
    if not shared.exists():
        pytest.skip("shared/seed is not beside this checkout")
    assert SEED.read_bytes() == shared.read_bytes()


def test_tcp_ports_refuse_a_client_without_credentials(srv: ApiServerProcess) -> None:
    before = revision(srv)
    for address in (srv.secure_address, srv.token_address):
        out = run_cli(address, "create", "namespace", "intruder")
        assert out.returncode == 1
        assert f"error: cannot reach the API server at {address}" in out.stderr
        assert "TLS only: give a kubeconfig" in out.stderr
    assert revision(srv) == before


def test_user_session(srv: ApiServerProcess) -> None:
    out = run_cli(srv, "apply", "-f", str(SEED))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "deployment.apps/web-app created",
        "service/web-app-service created",
    ]
    out = run_cli(srv, "apply", "-f", str(SEED))
    assert out.stdout.splitlines() == [
        "deployment.apps/web-app unchanged",
        "service/web-app-service unchanged",
    ]
    out = run_cli(srv, "get", "deployments,services", "-o", "wide")
    assert out.returncode == 0
    assert "deployment.apps/web-app" in out.stdout and "service/web-app-service" in out.stdout
    assert "nginx:latest" in out.stdout and "80/TCP" in out.stdout
    out = run_cli(srv, "get", "deployment", "web-app", "-o", "yaml")
    assert "kind: Deployment" in out.stdout and "maxSurge: 25%" in out.stdout
    out = run_cli(srv, "create", "node", "node1")
    assert out.returncode == 0 and out.stdout.strip() == "node/node1 created"
    out = run_cli(srv, "get", "no")
    assert "node1" in out.stdout
    out = run_cli(srv, "delete", "-f", str(SEED))
    assert out.returncode == 0
    assert 'deployment.apps "web-app" deleted' in out.stdout
    out = run_cli(srv, "get", "deploy", "web-app")
    assert out.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "web-app" not found' in out.stderr


BAD_INPUTS = {
    "invalid yaml": (SEED_TEXT.replace("replicas: 2", "replicas: [2"), "line"),
    "unknown kind": (SEED_TEXT.replace("kind: Deployment", "kind: Deploymint"), "Deploymint"),
    "unknown apiVersion": (SEED_TEXT.replace("apps/v1", "apps/v9"), "apps/v9"),
    "misspelt field": (SEED_TEXT.replace("replicas:", "replicaz:"), "spec.replicaz"),
    "wrong type": (SEED_TEXT.replace("replicas: 2", "replicas: two"), "spec.replicas"),
    "missing image": (SEED_TEXT.replace("        image: nginx:latest\n", ""), "image"),
    "bad name": (SEED_TEXT.replace("name: web-app\nspec", "name: Bad_Name\nspec"), "Bad_Name"),
    "name too long": (
        SEED_TEXT.replace("name: web-app\nspec", f"name: {'a' * 254}\nspec"),
        "no more than 253",
    ),
    "selector mismatch": (
        SEED_TEXT.replace(
            "      labels:\n        app: web-app", "      labels:\n        app: other"
        ),
        "does not match template",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_manifest_is_refused_and_stores_nothing(
    srv: ApiServerProcess, tmp_path: Path, case: str
) -> None:
    text, words = BAD_INPUTS[case]
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    before = revision(srv)
    out = run_cli(srv, "apply", "-f", str(manifest))
    assert out.returncode != 0, out.stdout
    assert words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == "", "a file applies whole or not at all"
    assert revision(srv) == before


def test_duplicate_cluster_ip_and_node_port(srv: ApiServerProcess, tmp_path: Path) -> None:
    svc = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: NAME}\n"
        "spec:\n  type: NodePort\n  clusterIP: 10.96.7.7\n  selector: {app: x}\n"
        "  ports: [{port: 80, nodePort: 30777}]\n"
    )
    first = tmp_path / "a.yaml"
    first.write_text(svc.replace("NAME", "dup-a"))
    assert run_cli(srv, "apply", "-f", str(first)).returncode == 0
    for name, change, words in (
        ("dup-b", "", "provided IP is already allocated"),
        ("dup-c", "10.96.7.7", "provided port is already allocated"),
    ):
        text = svc.replace("NAME", name)
        if change:
            text = text.replace(change, "10.96.7.8")
        f = tmp_path / f"{name}.yaml"
        f.write_text(text)
        before = revision(srv)
        out = run_cli(srv, "apply", "-f", str(f))
        assert out.returncode == 1 and words in out.stderr, out.stderr
        assert revision(srv) == before
    run_cli(srv, "delete", "-f", str(first))


def test_four_mebibyte_manifest(srv: ApiServerProcess, tmp_path: Path) -> None:
    blob = "x" * (4 * 1024 * 1024)
    f = tmp_path / "big.yaml"
    f.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  b: {blob}\n")
    before = revision(srv)
    out = run_cli(srv, "apply", "-f", str(f))
    assert out.returncode == 1
    assert "Request entity too large: limit is 3145728" in out.stderr
    assert revision(srv) == before


def test_unreachable_server_is_one_line() -> None:
    out = run_cli("127.0.0.1:1", "get", "pods")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: cannot reach the API server at 127.0.0.1:1")
    assert len(out.stderr.strip().splitlines()) == 1
