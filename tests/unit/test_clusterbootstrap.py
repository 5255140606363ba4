"""Bootstrap tokens' shared library: the token format, the Secret's layout, expiry."""

from __future__ import annotations

import datetime

import pytest

from apimachinery import clusterbootstrap as bt

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def test_generated_tokens_have_the_format_and_differ() -> None:
    tokens = {str(bt.generate_token()) for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert bt.TOKEN_RE.fullmatch(token)
        assert bt.parse_token(token) is not None


def test_parse_token() -> None:
    assert bt.parse_token("abcdef.0123456789abcdef") == bt.Token("abcdef", "0123456789abcdef")
    parsed = bt.parse_token("abcdef.0123456789abcdef")
    assert parsed is not None and parsed.secret_name == "bootstrap-token-abcdef"
    for bad in ("abcdef", "abcde.0123456789abcdef", "abcdef.0123456789ABCDEF", "a.b.c"):
        assert bt.parse_token(bad) is None


def test_the_secret_kubeadm_writes() -> None:
    secret = bt.new_token_secret(
        bt.Token("abcdef", "0123456789abcdef"), description="for node3", now=NOW
    )
    assert (secret.metadata.namespace, secret.metadata.name) == (
        "kube-system",
        "bootstrap-token-abcdef",
    )
    assert secret.type == "bootstrap.kubernetes.io/token"
    assert {k: v.decode() for k, v in secret.data.items()} == {
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "expiration": "2024-05-02T10:00:00Z",
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        "description": "for node3",
    }
    assert bt.is_bootstrap_token_secret(secret)
    forever = bt.new_token_secret(bt.Token("abcdef", "0123456789abcdef"), ttl=None)
    assert "expiration" not in forever.data
    assert bt.time_to_expiry(forever) == (None, False)


def test_expiry() -> None:
    secret = bt.new_token_secret(bt.Token("abcdef", "0123456789abcdef"), now=NOW)
    assert bt.time_to_expiry(secret, NOW) == (86400.0, False)
    assert bt.time_to_expiry(secret, NOW + datetime.timedelta(days=1)) == (0.0, True)
    secret.data["expiration"] = b"2024-05-01"
    assert bt.time_to_expiry(secret, NOW) == (0.0, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-02T10:00:00Z", datetime.datetime(2024, 5, 2, 10, tzinfo=UTC)),
        ("2024-05-02T12:00:00+02:00", datetime.datetime(2024, 5, 2, 10, tzinfo=UTC)),
        ("2024-05-02T10:00:00.25Z", datetime.datetime(2024, 5, 2, 10, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_rfc3339(text: str, expected: datetime.datetime) -> None:
    assert bt.parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text", ["2024-05-02T10:00:00", "2024-05-02", "tomorrow", "2024-13-02T10:00:00Z"]
)
def test_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):
        bt.parse_rfc3339(text)
