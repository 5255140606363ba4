"""`tinykube apiserver`: --event-ttl is checked before anything starts, and a corrupt store is
refused with a message that names the file and the way back (exit 1, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.unit.cli_apiserver import no_traceback


@pytest.mark.parametrize(
    ("value", "words"),
    [("0", "must be a positive duration"), ("banana", 'invalid duration "banana"')],
)
def test_bad_event_ttl_is_a_usage_error(tmp_path: Path, value: str, words: str) -> None:
    result = CliRunner().invoke(
        cli, ["apiserver", "--data-dir", str(tmp_path), "--event-ttl", value]
    )
    no_traceback(result)
    assert result.exit_code == 2
    assert "--event-ttl" in result.output and words in result.output
    assert not (tmp_path / "tinykube.db").exists()


def test_a_corrupt_store_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "tinykube.db").write_bytes(b"not a database\n" * 400)
    result = CliRunner().invoke(
        cli, ["apiserver", "--data-dir", str(tmp_path), "--listen", f"unix:{tmp_path}/api.sock"]
    )
    no_traceback(result)
    assert result.exit_code == 1
    assert f"the database {tmp_path / 'tinykube.db'} is corrupt" in result.output
    assert "tinykube snapshot restore" in result.output
