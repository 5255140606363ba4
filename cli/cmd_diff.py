"""`diff -f FILE` (kubectl/pkg/cmd/diff): what `apply` would change, as a unified diff.

    tinykube diff -f web.yaml
    diff -u -N /tmp/LIVE-1/apps.v1.Deployment.default.w /tmp/MERGED-2/apps.v1.Deployment.default.w
    --- /tmp/LIVE-1/apps.v1.Deployment.default.w	2024-05-01 10:00:00.000000000 +0000
    +++ /tmp/MERGED-2/apps.v1.Deployment.default.w	2024-05-01 10:00:00.000000000 +0000
    @@ -6,7 +6,7 @@
    ...
    -  replicas: 2
    +  replicas: 3

How, as kubectl does it: every object of the files is sent as a server-side
dry-run apply, so the "after" side is exactly what the server would store
-- merged with the live object, defaulted, validated, with a bumped
generation where the spec changes -- and nothing is written. The live
object (absent: an empty file, `diff -N`) and that answer are written as
YAML into two temporary directories, LIVE-* and MERGED-*, one file per
object named `group.version.Kind.namespace.name`, and the directories are
compared. `$KUBECTL_EXTERNAL_DIFF` names another program for that (run as
`PROGRAM LIVE_DIR MERGED_DIR`, its exit code is ours); otherwise a unified
diff in `diff -u -N`'s format is printed here. The directories are removed
afterwards.

A Secret's data is masked on both sides, as kubectl masks it: `***` where
the value did not change, `*** (before)` / `*** (after)` where it did; so
is its last-applied-configuration annotation, which holds the same data.

Exit codes, as kubectl documents them: 0 no differences, 1 differences
found, 2 (above 1) when anything failed -- a file that does not decode, an
object the server refuses, an unreachable server.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from apimachinery import codec, errors, scheme, yamlio
from cli import context
from cli.cmd_apply import load_objects
from cli.context import CommandError, Options, describe_error, echo_err, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client

EXIT_ERROR = 2
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def file_name(info: scheme.KindInfo, namespace: str, name: str) -> str:
    """`apps.v1.Deployment.default.w-app`, `v1.Service.default.web`: kubectl's names."""
    group = f"{info.group}." if info.group else ""
    version = info.api_version.rpartition("/")[2]
    return f"{group}{version}.{info.kind}.{namespace}.{name}"


def rendered(obj: Any | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    info = scheme.for_message(obj)
    obj.api_version = obj.api_version or info.api_version
    obj.kind = obj.kind or info.kind
    data = codec.to_dict(obj)
    data.get("metadata", {}).pop("managedFields", None)
    return data


def mask_secrets(live: dict[str, Any] | None, merged: dict[str, Any] | None) -> None:
    """Replace Secret values by `***` markers that still show which ones changed."""
    for side in (live, merged):
        if side is not None and side.get("kind") != "Secret":
            return
    _mask(((live or {}).get("data") or {}), ((merged or {}).get("data") or {}), None)
    # apply's record of the manifest holds the data too (kubectl leaves it; we do not).
    _mask(
        (live or {}).get("metadata", {}).get("annotations") or {},
        (merged or {}).get("metadata", {}).get("annotations") or {},
        LAST_APPLIED,
    )


def _mask(before: dict[str, Any], after: dict[str, Any], only: str | None) -> None:
    for key in set(before) | set(after):
        if only is not None and key != only:
            continue
        changed = key in before and key in after and before[key] != after[key]
        if key in before:
            before[key] = "*** (before)" if changed else "***"
        if key in after:
            after[key] = "*** (after)" if changed else "***"


def write_side(directory: Path, name: str, data: dict[str, Any] | None) -> None:
    if data is not None:
        (directory / name).write_text(yamlio.dump(data), encoding="utf-8")


def _stamp(path: Path) -> str:
    if not path.exists():
        return "1970-01-01 00:00:00.000000000 +0000"
    mtime = path.stat().st_mtime
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(mtime))
        + f".{int(mtime % 1 * 1e9):09d} +0000"
    )


def unified(live_dir: Path, merged_dir: Path) -> tuple[str, bool]:
    """`diff -u -N LIVE MERGED` of two directories: (text, whether they differ)."""
    names = sorted({p.name for p in live_dir.iterdir()} | {p.name for p in merged_dir.iterdir()})
    out: list[str] = []
    for name in names:
        left, right = live_dir / name, merged_dir / name
        a = left.read_text(encoding="utf-8").splitlines(keepends=True) if left.exists() else []
        b = right.read_text(encoding="utf-8").splitlines(keepends=True) if right.exists() else []
        lines = list(
            difflib.unified_diff(
                a, b, str(left), str(right), _stamp(left), _stamp(right), lineterm="\n"
            )
        )
        if not lines:
            continue
        out.append(f"diff -u -N {left} {right}\n")
        out.extend(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )
    return "".join(out), bool(out)


def compare(live_dir: Path, merged_dir: Path) -> int:
    """0 same, 1 different: $KUBECTL_EXTERNAL_DIFF's answer, or our own unified diff."""
    program = os.environ.get("KUBECTL_EXTERNAL_DIFF", "").strip()
    if program:
        try:
            done = subprocess.run([*shlex.split(program), str(live_dir), str(merged_dir)])
        except OSError as err:
            raise CommandError(f"failed to run {program!r}: {err.strerror or err}") from None
        return done.returncode
    text, differ = unified(live_dir, merged_dir)
    click.echo(text, nl=False)
    return 1 if differ else 0


async def dry_run_pair(client: Client, obj: Any) -> tuple[Any | None, Any]:
    """(live object or None, what an apply would store), without writing anything."""
    info = scheme.for_message(obj)
    try:
        live = await client.get(info, obj.metadata.name, obj.metadata.namespace)
    except errors.NotFound:
        live = None
    merged, _ = await client.apply(obj, dry_run=True)
    if live is not None and not merged.metadata.resource_version:
        merged.metadata.resource_version = live.metadata.resource_version
    return live, merged


@click.command("diff")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="File, directory of manifests, or - for stdin (repeatable).",
)
@namespace_option
@click.pass_obj
def diff(opts: Options, filenames: tuple[str, ...], namespace: str | None) -> None:
    """Diff the live version against a would-be applied version."""
    opts = effective(opts, namespace)
    try:
        objs = load_objects(filenames, opts)
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(EXIT_ERROR) from None
    except click.exceptions.Exit:
        raise click.exceptions.Exit(EXIT_ERROR) from None

    async def verb(client: Client) -> int:
        try:
            return await diff_all(client, objs, opts.server)
        except (errors.StatusError, CommandError) as err:
            echo_err(describe_error(err, opts.server, opts.secure))
            return EXIT_ERROR

    context.exit_with(context.run(opts, verb))


async def diff_all(client: Client, objs: list[Any], server: str) -> int:
    """Write both sides of every object, compare them; the exit code (0, 1 or 2)."""
    live_dir = Path(tempfile.mkdtemp(prefix="LIVE-"))
    merged_dir = Path(tempfile.mkdtemp(prefix="MERGED-"))
    try:
        failed = False
        for obj in objs:
            try:
                live, merged = await dry_run_pair(client, obj)
            except errors.StatusError as err:
                if isinstance(err, errors.ServiceUnavailable):
                    raise
                echo_err(describe_error(err, server))
                failed = True
                continue
            before, after = rendered(live), rendered(merged)
            mask_secrets(before, after)
            name = file_name(scheme.for_message(obj), obj.metadata.namespace, obj.metadata.name)
            write_side(live_dir, name, before)
            write_side(merged_dir, name, after)
        code = compare(live_dir, merged_dir)
        return EXIT_ERROR if failed else code
    finally:
        shutil.rmtree(live_dir, ignore_errors=True)
        shutil.rmtree(merged_dir, ignore_errors=True)
