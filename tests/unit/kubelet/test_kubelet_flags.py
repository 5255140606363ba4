"""`tinykube kubelet --container-log-max-size/--container-log-max-files`: parsed, checked, used.

The flags are Kubernetes' own (containerLogMaxSize and containerLogMaxFiles of
the KubeletConfiguration): a quantity of bytes, and an integer of at least 2.
A bad value is a usage error (exit 2) naming the flag and the form expected;
a good one lands in KubeletConfig and from there in the runtime and the
container log manager the kubelet starts (kubelet/logrotation.py).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from apimachinery.client import Client
from cli.cmd_kubelet import kubelet, kubelet_config
from cli.kubelet_options import KubeletFlags
from cli.main import cli
from kubelet.runtime.fake import FakeRuntime
from tests.unit.kubelet.conftest import Harness


def _flags(*args: str) -> KubeletFlags:
    """The KubeletFlags `tinykube kubelet ARGS` builds (parsed and checked, nothing started)."""
    ctx = kubelet.make_context("kubelet", ["--node-name", "node1", *args])
    return KubeletFlags(**ctx.params)


def _usage_error(*args: str) -> str:
    result = CliRunner().invoke(cli, ["kubelet", "--node-name", "node1", *args])
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())  # unwrapped


def test_defaults_are_kubernetes_own() -> None:
    config = kubelet_config(_flags())
    assert (config.container_log_max_size, config.container_log_max_files) == ("10Mi", 5)
    assert config.container_log_max_bytes() == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("size", "size_bytes"),
    [("256Ki", 262144), ("1Gi", 1 << 30), ("10M", 10_000_000), ("4096", 4096), ("-1", -1)],
)
def test_sizes_are_quantities(size: str, size_bytes: int) -> None:
    flags = _flags("--container-log-max-size", size, "--container-log-max-files", "2")
    config = kubelet_config(flags)
    assert config.container_log_max_bytes() == size_bytes
    assert config.container_log_max_files == 2


@pytest.mark.parametrize(
    ("size", "why"),
    [
        ("10MB", "'10MB' is not a quantity"),
        ("ten", "'ten' is not a quantity"),
        ("", "'' is not a quantity"),
        ("0.5", "'0.5' is not a whole number of bytes"),
    ],
)
def test_a_bad_size_names_the_flag_and_the_form(size: str, why: str) -> None:
    output = _usage_error("--container-log-max-size", size)
    assert f"Invalid value for '--container-log-max-size': {why}" in output
    assert "expected a quantity of bytes such as 10Mi, 512Ki or 1Gi" in output


@pytest.mark.parametrize("files", ["1", "0", "-3"])
def test_max_files_must_be_at_least_two(files: str) -> None:
    output = _usage_error("--container-log-max-files", files)
    assert (
        f"Invalid value for '--container-log-max-files': {files}: "
        "containerLogMaxFiles must be greater than 1 (an integer >= 2" in output
    )


def test_max_files_must_be_an_integer() -> None:
    output = _usage_error("--container-log-max-files", "three")
    assert "Invalid value for '--container-log-max-files': 'three' is not a valid integer" in output


async def test_the_flags_reach_the_runtime_and_the_log_manager(
    harness: Harness, client: Client
) -> None:
    config = kubelet_config(
        _flags("--container-log-max-size", "256Ki", "--container-log-max-files", "3")
    )
    runtime = FakeRuntime("10.244.1.0/24")
    kubelet_, _ = await harness.start(
        "node1",
        runtime,
        container_log_max_size=config.container_log_max_size,
        container_log_max_files=config.container_log_max_files,
    )
    # Docker's json-file driver is given these two figures; the kubelet's manager uses them.
    assert (runtime.log_max_size, runtime.log_max_files) == (262144, 3)
    assert (kubelet_.log_manager.max_size, kubelet_.log_manager.max_files) == (262144, 3)
