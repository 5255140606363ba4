"""Bootstrap tokens as bearer tokens: who a good one is, and every way a bad one is refused.

Also the CSR requester stamp (apiserver/auth/requester.py): the server, not
the client, says who asked for a certificate.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from apimachinery import clusterbootstrap as bt
from apiserver.auth.authorizer import UserInfo
from apiserver.auth.bootstraptoken import bootstrap_token_user, bootstrap_token_user_async
from apiserver.auth.requester import stamp_if_csr, stamp_requester
from protos import core_pb2
from tests.unit.csr_fixtures import kubelet_csr

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
TOKEN = bt.Token("abcdef", "0123456789abcdef")
BOOTSTRAP_USER = UserInfo(
    "system:bootstrap:abcdef",
    ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"),
)


def good_secret() -> core_pb2.Secret:
    return bt.new_token_secret(TOKEN, now=NOW)  # expires 24 h after NOW


def lookup_of(*secrets: core_pb2.Secret) -> dict[str, core_pb2.Secret]:
    return {s.metadata.name: s for s in secrets}


def user(
    secret: core_pb2.Secret | None, token: str = str(TOKEN), at: datetime.datetime = NOW
) -> UserInfo | None:
    found = lookup_of(secret) if secret is not None else {}
    return bootstrap_token_user(found.get, token, now=at)


def test_a_good_token_is_its_bootstrap_user() -> None:
    assert user(good_secret()) == BOOTSTRAP_USER
    assert user(good_secret(), at=NOW + datetime.timedelta(hours=23)) == BOOTSTRAP_USER


def test_the_async_lookup_gives_the_same_answer() -> None:
    async def lookup(name: str) -> core_pb2.Secret | None:
        return lookup_of(good_secret()).get(name)

    assert asyncio.run(bootstrap_token_user_async(lookup, str(TOKEN), now=NOW)) == BOOTSTRAP_USER
    assert (
        asyncio.run(bootstrap_token_user_async(lookup, "abcdef.wrongwrongwrong1", now=NOW)) is None
    )


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abcdef",
        "abcdef.0123456789abcde",  # 15 characters
        "abcdef.0123456789abcdefg",  # 17
        "ABCDEF.0123456789abcdef",  # upper case
        "abcdef:0123456789abcdef",
        " abcdef.0123456789abcdef",
        "abcdef.0123456789abcdef\n",
    ],
)
def test_malformed_tokens_are_nobody(token: str) -> None:
    looked_up: list[str] = []

    def lookup(name: str) -> core_pb2.Secret | None:
        looked_up.append(name)
        return good_secret()

    assert bootstrap_token_user(lookup, token, now=NOW) is None
    assert looked_up == []  # never reaches storage


def test_wrong_secret_half() -> None:
    assert user(good_secret(), "abcdef.0123456789abcdeg") is None
    assert user(good_secret(), "abcdef.ffffffffffffffff") is None


def test_unknown_token_id() -> None:
    assert user(None) is None
    assert user(good_secret(), "zzzzzz.0123456789abcdef") is None


def test_expired() -> None:
    assert user(good_secret(), at=NOW + datetime.timedelta(hours=24)) is None
    assert user(good_secret(), at=NOW + datetime.timedelta(days=3)) is None
    unreadable = good_secret()
    unreadable.data[bt.EXPIRATION_KEY] = b"next tuesday"
    assert user(unreadable) is None
    forever = bt.new_token_secret(TOKEN, ttl=None)
    assert user(forever, at=NOW + datetime.timedelta(days=3650)) == BOOTSTRAP_USER


def test_wrong_type() -> None:
    secret = good_secret()
    secret.type = "Opaque"
    assert user(secret) is None


def test_not_for_authentication() -> None:
    secret = good_secret()
    del secret.data[bt.USAGE_AUTHENTICATION]
    assert user(secret) is None
    secret.data[bt.USAGE_AUTHENTICATION] = b"false"
    assert user(secret) is None
    signing_only = bt.new_token_secret(TOKEN, usages=("signing",), now=NOW)
    assert user(signing_only) is None


def test_token_id_in_the_data_must_match() -> None:
    secret = good_secret()
    secret.data[bt.TOKEN_ID_KEY] = b"zzzzzz"
    assert user(secret) is None


def test_being_deleted() -> None:
    secret = good_secret()
    secret.metadata.deletion_timestamp.seconds = 1
    assert user(secret) is None


def test_extra_groups() -> None:
    secret = good_secret()
    secret.data[bt.EXTRA_GROUPS_KEY] = b"system:bootstrappers:a, system:bootstrappers:b"
    found = user(secret)
    assert found is not None
    assert found.groups == (
        "system:bootstrappers",
        "system:bootstrappers:a",
        "system:bootstrappers:b",
    )
    secret.data[bt.EXTRA_GROUPS_KEY] = b"system:masters"  # a token may not make an admin
    assert user(secret) is None
    no_extra = bt.new_token_secret(TOKEN, extra_groups=(), now=NOW)
    found = user(no_extra)
    assert found is not None and found.groups == ("system:bootstrappers",)


def test_stamp_requester_overwrites_what_the_client_claimed() -> None:
    csr = kubelet_csr("node3")
    csr.spec.username = "system:node:node3"
    csr.spec.groups.extend(["system:nodes", "system:masters"])
    csr.status.conditions.add(type="Approved", status="True")
    csr.status.certificate = b"-----BEGIN CERTIFICATE-----\n"
    requester = UserInfo(
        "system:bootstrap:abcdef", ("system:bootstrappers", "system:authenticated"), uid="u1"
    )
    stamp_requester(csr, requester)
    assert csr.spec.username == "system:bootstrap:abcdef"
    assert csr.spec.uid == "u1"
    assert list(csr.spec.groups) == ["system:bootstrappers", "system:authenticated"]
    assert not csr.HasField("status")


def test_stamp_if_csr_leaves_other_kinds_alone() -> None:
    secret = good_secret()
    before = secret.SerializeToString()
    stamp_if_csr(secret, BOOTSTRAP_USER)
    assert secret.SerializeToString() == before
    csr = kubelet_csr("node3")
    stamp_if_csr(csr, BOOTSTRAP_USER)
    assert csr.spec.username == "system:bootstrap:abcdef"
