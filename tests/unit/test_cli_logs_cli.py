"""`tinykube logs` end to end: CLI -> API server -> a hollow kubelet's server, for the
ways kubectl names what to read (POD, TYPE/NAME, -l), the containers (-c, the default one,
--all-containers), the options (--prefix, --timestamps, --since, --since-time, --tail) and
the errors, in kubectl's words."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.unit.cli_node import ClusterProcess

pytestmark = pytest.mark.timeout(90)

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


def pod_manifest(name: str, *containers: str, labels: str = "{}", init: str = "") -> str:
    text = (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {labels}}}\n"
        "spec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 0\n"
    )
    if init:
        text += f"  initContainers: [{{name: {init}, image: busybox}}]\n"
    text += "  containers:\n"
    text += "".join(f"  - {{name: {c}, image: nginx}}\n" for c in containers)
    return text


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx}]}
"""


def running(cluster: ClusterProcess, *names: str) -> None:
    def all_running() -> bool:
        return all(cluster.pod(n).status.phase == "Running" for n in names)

    cluster.wait(all_running, f"pods {names} Running")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    c = ClusterProcess(tmp_path_factory.mktemp("logs"), kubelet=True)
    try:
        c.runtime("behave", container="app", logs=["app started"])
        c.runtime("behave", container="setup", logs=["setup done"], exit_code=0)
        c.runtime("behave", container="main", logs=["main says hi"])
        c.runtime("behave", container="side", logs=["side says hi"])
        c.apply(DEPLOYMENT)
        c.apply(pod_manifest("web-a", "app", labels="{app: web}"))
        c.apply(pod_manifest("web-b", "app", labels="{app: web}"))
        c.apply(pod_manifest("multi", "main", "side", init="setup"))
        c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")
        running(c, "web-a", "web-b", "multi")
        for pod in ("web-a", "web-b"):
            assert c.runtime("write", pod=pod, container="app", text=f"I am {pod}")["ok"]
        yield c
    finally:
        c.stop()


def test_pod_and_pod_slash_name(cluster: ClusterProcess) -> None:
    for target in ("web-a", "pod/web-a", "po/web-a"):
        got = cluster.tk("logs", target)
        assert (got.exit_code, got.stdout) == (0, "app started\nI am web-a\n"), got.output
    inline = cluster.tk("logs", "multi", "side")
    assert inline.stdout == "side says hi\n"


def test_deployment_uses_the_first_pod(cluster: ClusterProcess) -> None:
    got = cluster.tk("logs", "deploy/web")
    assert got.exit_code == 0, got.output
    match = re.fullmatch(r"Found 2 pods, using pod/(web-[ab])\n", got.stderr)
    assert match is not None, got.stderr
    assert got.stdout == f"app started\nI am {match.group(1)}\n"


def test_selector_reads_every_pod_with_prefixes(cluster: ClusterProcess) -> None:
    got = cluster.tk("logs", "-l", "app=web", "--prefix")
    assert got.exit_code == 0, got.output
    assert got.stdout.splitlines() == [
        "[pod/web-a/app] app started",
        "[pod/web-a/app] I am web-a",
        "[pod/web-b/app] app started",
        "[pod/web-b/app] I am web-b",
    ]
    none = cluster.tk("logs", "-l", "app=nothing")
    assert (none.exit_code, none.stdout) == (0, "")
    assert none.stderr == "No resources found in default namespace.\n"


def test_containers_default_named_and_all(cluster: ClusterProcess) -> None:
    default = cluster.tk("logs", "multi")
    assert default.stdout == "main says hi\n"
    assert default.stderr == 'Defaulted container "main" out of: main, side, setup (init)\n'
    everything = cluster.tk("logs", "multi", "--all-containers", "--prefix")
    assert everything.stdout.splitlines() == [
        "[pod/multi/setup] setup done",
        "[pod/multi/main] main says hi",
        "[pod/multi/side] side says hi",
    ]
    init = cluster.tk("logs", "multi", "-c", "setup")
    assert (init.stdout, init.stderr) == ("setup done\n", "")


def test_timestamps_since_and_tail(cluster: ClusterProcess) -> None:
    stamped = cluster.tk("logs", "web-b", "--timestamps")
    lines = stamped.stdout.splitlines()
    assert [re.sub(f"^{STAMP} ", "", line) for line in lines] == ["app started", "I am web-b"]
    assert all(re.match(f"{STAMP} ", line) for line in lines), lines
    time.sleep(1.2)
    assert cluster.runtime("write", pod="web-b", container="app", text="fresh")["ok"]
    recent = cluster.tk("logs", "web-b", "--since=1s")
    assert recent.stdout == "fresh\n"
    future = cluster.tk("logs", "web-b", "--since-time", "2999-01-01T00:00:00Z")
    assert (future.exit_code, future.stdout) == (0, "")
    past = cluster.tk("logs", "web-b", "--since-time=2000-01-01T00:00:00+02:00", "--tail=1")
    assert past.stdout == "fresh\n"
    for i in range(12):
        cluster.runtime("write", pod="web-a", container="app", text=f"line {i}")
    ten = cluster.tk("logs", "-l", "app=web")  # a selector shows the last 10 lines of each
    assert ten.stdout.splitlines()[:10] == [f"line {i}" for i in range(2, 12)]


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (("deploy/missing",), 'Error from server (NotFound): deployments.apps "missing" not found'),
        (("missing",), 'Error from server (NotFound): pods "missing" not found'),
        (("web-a", "-c", "nope"), "error: container nope is not valid for pod web-a"),
        (
            ("cm/settings",),
            "error: cannot get the logs from *v1.ConfigMap: selector for *v1.ConfigMap "
            "not implemented",
        ),
        (("nosuch/x",), 'error: the server doesn\'t have a resource type "nosuch"'),
        (
            ("-f", "-l", "app=web", "--max-log-requests", "1"),
            "error: you are attempting to follow 2 log streams, but maximum allowed "
            "concurrency is 1, use --max-log-requests to increase the limit",
        ),
        (
            ("web-a", "--previous"),
            'Error from server (BadRequest): previous terminated container "app" in pod '
            '"web-a" not found',
        ),
    ],
)
def test_errors_in_kubectls_words(
    cluster: ClusterProcess, args: tuple[str, ...], stderr: str
) -> None:
    got = cluster.tk("logs", *args)
    assert got.exit_code == 1
    assert got.stderr.rstrip("\n") == stderr
    assert "Traceback" not in got.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'."),
        (("a", "b", "c"), "error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'."),
        (("web", "-l", "app=web"), "error: only a selector (-l) or a POD name is allowed"),
        (("web", "side", "-c", "main"), "error: only one of -c or an inline [CONTAINER] arg"),
        (("web", "--since=5m", "--since-time=2024-01-01T00:00:00Z"), "error: at most one of"),
        (("web", "--since=5x"), 'error: invalid argument "5x" for "--since" flag'),
        (("web", "--since-time=yesterday"), 'error: parsing time "yesterday"'),
        (("web", "--tail=-2"), "error: --tail must be greater than or equal to -1"),
        (("web", "--all-containers", "-c", "main"), "error: --all-containers=true should not"),
        (("web", "--max-log-requests=0"), "error: --max-log-requests should be greater than 0"),
    ],
)
def test_flags_refused_before_any_request(args: tuple[str, ...], message: str) -> None:
    # nothing listens at this address: a refusal before any request is the only way to
    # print these messages
    from click.testing import CliRunner

    from cli.main import cli

    got = CliRunner().invoke(cli, ["--server", "unix:/nonexistent/api.sock", "logs", *args])
    assert got.exit_code == 1
    assert got.stderr.startswith(message), got.stderr
