"""Reading container log files (runtime/cri_logs.py): `--tail` from the end, `-f` across a rotation.

Synthetic files in a temporary directory, in both formats (CRI, Docker's
json-file); the bytes read are counted through the reader's `opener` seam.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from kubelet.runtime import cri_logs, docker_logs
from kubelet.runtime.interface import LogLine


def cri(text: str, stream: str = "stdout", tag: str = "F", second: int = 0) -> bytes:
    return f"2024-05-01T10:00:{second:02d}.5Z {stream} {tag} {text}\n".encode()


def docker(text: str, stream: str = "stdout") -> bytes:
    record = {"log": text, "stream": stream, "time": "2024-05-01T10:00:00.5Z"}
    return json.dumps(record).encode() + b"\n"


class CountingFile:
    """A log file handle that counts the bytes read through it."""

    def __init__(self, f: BinaryIO, counter: list[int]) -> None:
        self.f = f
        self.counter = counter

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.counter[0] += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def fileno(self) -> int:
        return self.f.fileno()

    def close(self) -> None:
        self.f.close()


def counting_opener(counter: list[int]) -> cri_logs.Opener:
    def opener(path: Path) -> BinaryIO:
        return CountingFile(path.open("rb"), counter)  # type: ignore[return-value]

    return opener


async def never() -> bool:
    return False


async def collect(lines: AsyncIterator[LogLine]) -> list[str]:
    return [line.text async for line in lines]


async def wait_for(what: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if what():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


# ---- --tail from the end ---------------------------------------------------------------------


def test_tail_of_a_50_mb_file_reads_a_few_blocks(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    with path.open("wb") as f:  # 500 blocks of 1000 records of 100 bytes
        for block in range(500):
            f.write(b"".join(cri(f"{block:03d}-{i:05d}-" + "x" * 57) for i in range(1000)))
    assert path.stat().st_size == 50_000_000
    counter = [0]
    lines = asyncio.run(
        collect(
            cri_logs.read_log(
                path, follow=False, tail=10, exited=never, opener=counting_opener(counter)
            )
        )
    )
    assert [text.split("-")[1] for text in lines] == [f"{i:05d}" for i in range(990, 1000)]
    assert lines[-1].startswith("499-00999-")
    assert counter[0] <= 2 * cri_logs.TAIL_BLOCK, counter  # one block, not 50 MB

    counter[0] = 0
    many = asyncio.run(
        collect(
            cri_logs.read_log(
                path, follow=False, tail=5000, exited=never, opener=counting_opener(counter)
            )
        )
    )
    assert len(many) == 5000 and many[0].startswith("495-00000-")
    assert counter[0] < 1_100_000, counter  # 500 KB of lines: blocks doubled up to 1 MiB


def _mixed_records() -> bytes:
    """Two streams interleaved, long lines split into P pieces across them."""
    out = []
    for i in range(40):
        if i % 3 == 0:
            out += [cri(f"long-{i}-a", "stderr", "P"), cri(f"out-{i}"), cri(f"-b{i}", "stderr")]
        elif i % 5 == 0:
            out += [cri(f"p{i}-", tag="P"), cri(f"p{i}-", tag="P"), cri(f"end{i}")]
        else:
            out.append(cri(f"line-{i}", "stdout" if i % 2 else "stderr"))
    return b"".join(out)


@pytest.mark.parametrize("block", [16, 50, 64, 200, 4096])
def test_tail_lines_are_whole_whatever_the_block(tmp_path: Path, block: int) -> None:
    data = _mixed_records() + b"2024-05-01T10:00:00Z stdout F half-writ"  # unfinished record
    path = tmp_path / "0.log"
    path.write_bytes(data)
    everything = cri_logs.parse_records(data[: data.rfind(b"\n") + 1], {})
    for tail in range(len(everything) + 3):
        with path.open("rb") as f:
            lines, partial, offset = cri_logs.tail_records(f, cri_logs.parse_records, tail, block)
        assert lines == (everything[-tail:] if tail else []), (tail, block)
        assert partial == {} and offset == data.rfind(b"\n") + 1


def test_tail_keeps_an_open_partial_line_for_the_follower(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(cri("one") + cri("two") + cri("thr", tag="P"))
    with path.open("rb") as f:
        lines, partial, offset = cri_logs.tail_records(f, cri_logs.parse_records, 1, 16)
    assert [line.text for line in lines] == ["two"]
    assert partial == {"stdout": "thr"} and offset == path.stat().st_size


async def test_tail_then_follow_reads_on_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"".join(cri(f"old-{i}") for i in range(1000)) + cri("par", tag="P"))
    done = asyncio.Event()

    async def exited() -> bool:
        return done.is_set()

    task = asyncio.ensure_future(
        collect(cri_logs.read_log(path, follow=True, tail=2, exited=exited))
    )
    await asyncio.sleep(0.3)
    with path.open("ab") as f:
        f.write(cri("tial") + cri("new"))
    done.set()
    assert await asyncio.wait_for(task, 5) == ["old-998", "old-999", "partial", "new"]


async def test_tail_zero_follows_only_what_comes(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(cri("before") + cri("half")[:12])
    done = asyncio.Event()

    async def exited() -> bool:
        return done.is_set()

    task = asyncio.ensure_future(
        collect(cri_logs.read_log(path, follow=True, tail=0, exited=exited))
    )
    await asyncio.sleep(0.3)
    with path.open("ab") as f:
        f.write(cri("half")[12:] + cri("after"))
    done.set()
    assert await asyncio.wait_for(task, 5) == ["half", "after"]


# ---- -f across a rotation --------------------------------------------------------------------


Reader = Callable[..., AsyncIterator[LogLine]]
FORMATS: list[tuple[Reader, Callable[[str], bytes]]] = [
    (cri_logs.read_log, cri),
    (docker_logs.read_log, lambda text: docker(text + "\n")),
]


@pytest.mark.parametrize(("read_log", "record"), FORMATS, ids=["cri", "json-file"])
async def test_follow_goes_on_across_a_rename_and_a_new_file(
    tmp_path: Path, read_log: Reader, record: Callable[[str], bytes]
) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(record("a") + record("b"))
    done = asyncio.Event()
    seen: list[str] = []

    async def exited() -> bool:
        return done.is_set()

    async def follow() -> None:
        async for line in read_log(path, follow=True, tail=None, exited=exited):
            seen.append(line.text)

    task = asyncio.ensure_future(follow())
    await wait_for(lambda: seen == ["a", "b"])
    rotated = tmp_path / "0.log.20240501-100000"
    os.rename(path, rotated)  # the kubelet renames it aside...
    with rotated.open("ab") as f:  # ...the runtime still writes to it
        f.write(record("c"))
    await wait_for(lambda: seen == ["a", "b", "c"])
    path.touch()  # reopened, nothing written yet: the old file may still get records
    await asyncio.sleep(0.5)
    with rotated.open("ab") as f:
        f.write(record("d"))
    await wait_for(lambda: seen == ["a", "b", "c", "d"])
    with path.open("ab") as f:  # the writer has moved to the new file
        f.write(record("e"))
    await wait_for(lambda: seen[-1:] == ["e"])
    os.rename(path, tmp_path / "0.log.20240501-100010")  # a second rotation
    path.write_bytes(record("f"))
    await wait_for(lambda: seen[-1:] == ["f"])
    done.set()
    await asyncio.wait_for(task, 5)
    assert seen == ["a", "b", "c", "d", "e", "f"]


async def test_follow_reads_a_truncated_file_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(cri("one") + cri("two"))
    done = asyncio.Event()
    seen: list[str] = []

    async def exited() -> bool:
        return done.is_set()

    async def follow() -> None:
        async for line in cri_logs.read_log(path, follow=True, tail=None, exited=exited):
            seen.append(line.text)

    task = asyncio.ensure_future(follow())
    await wait_for(lambda: seen == ["one", "two"])
    os.truncate(path, 0)  # copytruncate, then new output
    with path.open("ab") as f:
        f.write(cri("3"))
    await wait_for(lambda: seen == ["one", "two", "3"])
    done.set()
    await asyncio.wait_for(task, 5)


async def test_follow_at_exit_reads_a_rotation_it_has_not_seen(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(cri("first"))
    calls = 0

    async def exited() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:  # between two looks: rotated, then the container wrote and exited
            os.rename(path, tmp_path / "0.log.20240501-100000")
            path.write_bytes(cri("last"))
            return True
        return True

    lines = await collect(cri_logs.read_log(path, follow=True, tail=None, exited=exited))
    assert lines == ["first", "last"]


async def test_follow_waits_for_the_file_and_stops_when_the_container_exits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "0.log"
    done = asyncio.Event()

    async def exited() -> bool:
        return done.is_set()

    task = asyncio.ensure_future(
        collect(cri_logs.read_log(path, follow=True, tail=5, exited=exited))
    )
    await asyncio.sleep(0.3)
    path.write_bytes(cri("hello"))
    await asyncio.sleep(0.3)
    done.set()
    assert await asyncio.wait_for(task, 5) == ["hello"]
    assert (
        await collect(cri_logs.read_log(tmp_path / "none", follow=False, tail=None, exited=never))
        == []
    )


def test_a_second_rotation_before_the_switch_skips_no_file(tmp_path: Path) -> None:
    """Docker's way: `.1` becomes `.2` as the current file becomes `.1` and a new one starts;
    twice, between the reader seeing the first rotation and moving to the new file."""
    path = tmp_path / "c-json.log"

    def rotate(text: str) -> None:
        one = tmp_path / "c-json.log.1"
        if one.exists():
            os.rename(one, tmp_path / "c-json.log.2")
        os.rename(path, one)
        path.write_bytes(docker(text))

    path.write_bytes(docker("a\n"))
    log = cri_logs.LogFile(path, cri_logs.open_log)
    assert log.open()
    try:
        assert log.read() == (docker("a\n"), True) and not log.rotated()
        rotate("b\n")
        assert log.rotated()  # seen: the new file is held from now on
        rotate("c\n")  # rotated again before the switch
        assert log.switch() == b""  # nothing more in the first file
        assert log.read() == (docker("b\n"), True)  # the second file, not skipped
        assert log.rotated()
        log.switch()
        assert log.read() == (docker("c\n"), True)
    finally:
        log.close()
