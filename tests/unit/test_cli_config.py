"""Server address resolution: flag > $TINYKUBE_SERVER > config file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_when_nothing_is_configured(tmp_path: Path) -> None:
    assert config.resolve_server(None, {"HOME": str(tmp_path)}) == "127.0.0.1:6443"


def test_home_config_file(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "server: 192.168.56.10:6443\n")
    assert config.resolve_server(None, {"HOME": str(tmp_path)}) == "192.168.56.10:6443"


def test_explicit_config_file_beats_home(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "server: 10.0.0.1:6443\n")
    other = write(tmp_path / "other.yaml", "server: 10.0.0.2:7443\n")
    env = {"HOME": str(tmp_path), "TINYKUBE_CONFIG": str(other)}
    assert config.resolve_server(None, env) == "10.0.0.2:7443"


def test_env_beats_file_and_flag_beats_env(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "server: 10.0.0.1:6443\n")
    env = {"HOME": str(tmp_path), "TINYKUBE_SERVER": "10.0.0.3:6443"}
    assert config.resolve_server(None, env) == "10.0.0.3:6443"
    assert config.resolve_server("10.0.0.4:6443", env) == "10.0.0.4:6443"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("https://10.0.0.1:6443/", "10.0.0.1:6443"),
        ("http://node1:7000", "node1:7000"),
        ("node1", "node1:6443"),
        ("[::1]", "[::1]:6443"),
        ("[::1]:7443", "[::1]:7443"),
        (" 127.0.0.1:6443 ", "127.0.0.1:6443"),
    ],
)
def test_normalize_server(raw: str, want: str) -> None:
    assert config.normalize_server(raw) == want


def test_empty_config_file_falls_back_to_default(tmp_path: Path) -> None:
    write(tmp_path / ".tinykube" / "config", "")
    assert config.resolve_server(None, {"HOME": str(tmp_path)}) == config.DEFAULT_SERVER


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "must be a YAML mapping"),
        ("server: 6443\n", "'server' must be a string"),
        ("server: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_file_is_an_error_naming_it(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / ".tinykube" / "config", text)
    with pytest.raises(config.ConfigError) as info:
        config.resolve_server(None, {"HOME": str(tmp_path)})
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "TINYKUBE_CONFIG": str(tmp_path / "nope")}
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.resolve_server(None, env)
    # ... but the flag does not need the file at all
    assert config.resolve_server("10.0.0.9:6443", env) == "10.0.0.9:6443"
