"""Lists in pages: `limit` and `continue`, every page read at the first page's revision.

Kubernetes' counterparts: the continue token of k8s.io/apiserver/pkg/storage
(continue.go), the list options' checks (ValidateListOptions,
ListReadConsistency) and the paging loop of the etcd3 store's GetList. Both
protocols come here: the gRPC List and the HTTP list (httpapi/lists.py, through
the same servicer), so a page means the same thing on either.

A list with `limit=N` answers at most N objects and, when more remain, a
`continue` token. The token is Kubernetes' own: unpadded URL-safe base64 of
`{"v": "meta.k8s.io/v1", "rv": R, "start": K}`, where R is the revision the
first page was read at and K is the key to go on from, relative to the list's
key prefix (the last key returned plus "\\0", the smallest key after it). Every
later page is read from storage at R (Storage.list_page), so the pages joined
are exactly the state at R, whatever was written meanwhile. Worked example,
ConfigMaps a..e in `default`, `limit=2`:

    page 1: list_page("/registry/configmaps/default/", limit=2) at now = 40
            -> a, b; token {"rv": 40, "start": "b\\0"}, remainingItemCount 3
    (c is deleted at 41, aa created at 42)
    page 2: list_page(..., revision=40, start=".../b\\0", limit=2) -> c, d
            (c as it was at 40; aa is not in the snapshot)
    page 3: -> e, no token: the list is a, b, c, d, e, the state at 40.

Selectors. `limit` counts objects that match, as in Kubernetes: the loop reads
further storage pages (doubling the read, up to 10000 keys, as GetList does)
until it has `limit` matches or the range ends. `remainingItemCount` is told
only without selectors, where it is exact: the keys the last storage page
counted from its start, minus those this page took.

Expiry. The snapshot lives as long as the store keeps revision R: after the
compactor passes it, the next page is 410 Expired with Kubernetes' message,
and the error carries (`ContinueExpired.continue_token`) a token at rv -1 that
reads on from the same key at the newest revision: an inconsistent remainder,
for a client that prefers it to starting over. The HTTP API puts it in the
Status' `metadata.continue` as Kubernetes does; the gRPC status has no place
for it (clients start the list again, as client-go's pager does).

resourceVersion. Unset, "0" and `NotOlderThan` read the newest state (never
older than anything a client saw). `resourceVersionMatch=Exact` with a
revision reads the store at exactly that revision (paged as above) while it is
kept; a compacted one is 410 Expired, one in the future a storage error.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import any_pb2

from apimachinery import errors
from apiserver.storage.interface import Compacted, KeyValue, Storage, StorageError

TOKEN_VERSION = "meta.k8s.io/v1"
LATEST = -1  # a token's rv that means "the newest revision" (the inconsistent remainder)
MAX_FETCH = 10_000  # the most keys one storage read takes (Kubernetes' maxLimit)
UNPAGED_FETCH = 500  # a list without limit still reads storage this many keys at a time
_FETCH_ATTEMPTS = 3  # an unpaged list overtaken by a compaction starts over this often

EXPIRED_LIST = "The resourceVersion for the provided list is too old."
EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result."
    " You can start a new list without the continue parameter, or use the continue token"
    " in this response to retrieve the remainder of the results. Continuing with the"
    " provided token results in an inconsistent list - objects that were created,"
    " modified, or deleted between the time the first chunk was returned and now may"
    " show up in the list."
)
_LIST_OPTIONS = "ListOptions.meta.k8s.io"


class ContinueExpired(errors.Expired):
    """A continue token's revision is compacted; `continue_token` reads on at the newest."""

    def __init__(self, continue_token: str) -> None:
        super().__init__(EXPIRED_CONTINUE)
        self.continue_token = continue_token


@dataclass(frozen=True)
class ListOptions:
    """What a list asks (metav1.ListOptions, less watch's)."""

    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass(frozen=True)
class Page:
    """One answer to a list: objects packed for the wire, the revision they were read
    at, the token for the next page ("" when none) and, without selectors, how many
    objects remain after it."""

    items: list[any_pb2.Any]
    revision: int
    continue_token: str = ""
    remaining_item_count: int | None = None


# ------------------------------------------------------------------ tokens


def encode_continue(revision: int, key: str, prefix: str) -> str:
    """The token that goes on from storage key `key` (inclusive) at `revision`."""
    if not key.startswith(prefix):
        raise ValueError(f"key {key!r} is not under the list's prefix {prefix!r}")
    start = key[len(prefix) :]
    raw = json.dumps({"v": TOKEN_VERSION, "rv": revision, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_token(detail: str) -> errors.BadRequest:
    return errors.BadRequest(f"invalid continue token: continue key is not valid: {detail}")


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """(revision, storage key to start at) of a token; LATEST as the revision means the
    newest. A token that does not decode is 400 BadRequest, as in Kubernetes."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except RecursionError:  # JSON nested past what the decoder follows: not a token
        raise errors.BadRequest("the request nests too deeply to be read") from None
    except (binascii.Error, ValueError) as err:
        raise _bad_token(str(err)) from None
    if not isinstance(data, dict):
        raise _bad_token("the token is not a JSON object")
    if data.get("v") != TOKEN_VERSION:
        raise _bad_token(f'server does not recognize this encoded version "{data.get("v")}"')
    revision, start = data.get("rv"), data.get("start")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision == 0:
        raise _bad_token(f"incorrect encoded start resourceVersion (version {TOKEN_VERSION})")
    if not isinstance(start, str) or not start:
        raise _bad_token(f"encoded start key empty (version {TOKEN_VERSION})")
    # Kubernetes' guard against a token that climbs out of the list's prefix ("../").
    rooted = start if start.startswith("/") else "/" + start
    if posixpath.normpath(rooted) != rooted or rooted.startswith("//"):
        raise _bad_token(start)
    return (LATEST if revision < 0 else revision), prefix + rooted[1:]


# ------------------------------------------------------------------ checks


def _check(options: ListOptions) -> None:
    """The list options' rules (Kubernetes' ValidateListOptions and ListReadConsistency)."""
    match, rv = options.resource_version_match, options.resource_version
    causes: list[errors.FieldError] = []
    if match:
        path = "resourceVersionMatch"
        if not rv:
            causes.append(
                errors.forbidden(
                    path, "resourceVersionMatch is forbidden unless resourceVersion is provided"
                )
            )
        if options.continue_token:
            causes.append(
                errors.forbidden(
                    path, "resourceVersionMatch is forbidden when continue is provided"
                )
            )
        if match not in ("Exact", "NotOlderThan"):
            causes.append(errors.unsupported(path, match, ["Exact", "NotOlderThan", ""]))
        if match == "Exact" and rv == "0":
            causes.append(
                errors.forbidden(
                    path, 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
                )
            )
    if causes:
        raise errors.Invalid.for_object(_LIST_OPTIONS, "", causes)
    if options.continue_token and rv not in ("", "0"):
        raise errors.BadRequest("specifying resource version is not allowed when using continue")


def _exact_revision(options: ListOptions) -> int:
    """The revision an Exact list asks for (0: none asked, read the newest)."""
    if options.resource_version_match != "Exact":
        if options.resource_version:
            _parse_revision(options.resource_version)  # still must be a number
        return 0
    return _parse_revision(options.resource_version)


def _parse_revision(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise errors.BadRequest(
            f'resourceVersion: Invalid value: "{text}": must be a non-negative integer'
        )
    return value


# ------------------------------------------------------------------ the loop


Matcher = Callable[[KeyValue], bool]
Packer = Callable[[KeyValue], any_pb2.Any]


async def list_page(
    storage: Storage,
    prefix: str,
    options: ListOptions,
    matches: Matcher | None,
    pack: Packer,
) -> Page:
    """One page of the list under `prefix` (see the module docstring).

    `matches` is None when there are no selectors (every key is an object of the list).
    """
    _check(options)
    revision, start = 0, ""
    if options.continue_token:
        revision, start = decode_continue(options.continue_token, prefix)
        revision = max(revision, 0)  # LATEST: read the newest, as a first page does
    else:
        revision = _exact_revision(options)
    attempts = 1 if (options.continue_token or revision) else _FETCH_ATTEMPTS
    for attempt in range(attempts):
        try:
            return await _collect(storage, prefix, options.limit, revision, start, matches, pack)
        except Compacted:
            if options.continue_token:
                raise ContinueExpired(encode_continue(LATEST, start, prefix)) from None
            if attempt + 1 == attempts:
                raise errors.Expired(EXPIRED_LIST) from None
    raise AssertionError("unreachable")


async def _collect(
    storage: Storage,
    prefix: str,
    limit: int,
    revision: int,
    start: str,
    matches: Matcher | None,
    pack: Packer,
) -> Page:
    """Read storage pages at one revision until `limit` matches or the range's end."""
    paged = limit > 0
    fetch = min(limit, MAX_FETCH) if paged else UNPAGED_FETCH
    items: list[any_pb2.Any] = []
    while True:
        page = await storage.list_page(prefix, revision=revision, start=start, limit=fetch)
        revision = page.revision  # the first read names it; every later read uses it
        more, taken = page.more, 0
        for kv in page.items:
            if paged and len(items) >= limit:
                more = True  # the bucket is full with keys of this read left over
                break
            taken += 1
            start = kv.key + "\0"
            if matches is None or matches(kv):
                items.append(pack(kv))
        if not more:
            return Page(items, revision)
        if not taken:
            raise StorageError(f"storage said more keys follow {start!r} but returned none")
        if paged and len(items) >= limit:
            token = encode_continue(revision, start, prefix)
            remaining = page.count - taken if matches is None else None
            return Page(items, revision, token, remaining)
        if paged:
            fetch = min(fetch * 2, MAX_FETCH)
