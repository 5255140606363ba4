"""A sampling profiler for the API server a benchmark starts (`api_latency.py --profile-server`).

py-spy is not on the project's machines, and cProfile doubles the cost of
every Python call, which changes the very balance being measured (Python
fan-out against gRPC's C core). So this samples instead: Python imports a
`sitecustomize` module at start-up from any directory on PYTHONPATH, and the
benchmark puts this directory there, with $TINYKUBE_SERVER_PROFILE naming the
output file, for the server process only (the module does nothing in a process
whose command line does not say `apiserver`).

A daemon thread wakes every `INTERVAL` seconds and, for every other thread,
reads its CPU clock (`pthread_getcpuclockid`) and its Python stack
(`sys._current_frames`). The CPU the thread used since the last sample is
credited to the stack it is in now, so the profile is of CPU, not wall time:
a loop idle in epoll costs nothing. The output, rewritten every two seconds
and at exit, is one line per distinct stack in the "collapsed" format that
flame-graph tools read (`thread;outer;...;inner microseconds`), after
`#cpu THREAD SECONDS` lines with each thread's total. Time a thread spends
inside C code (gRPC's core, SQLite, fsync) is credited to the Python frame
that called it, e.g. `events.py:_run` for gRPC's Cython callbacks.
"""

from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
import time
from types import FrameType

INTERVAL = 0.002
_OUT = os.environ.get("TINYKUBE_SERVER_PROFILE", "")


def _stack(frame: FrameType | None) -> str:
    names: list[str] = []
    while frame is not None:
        code = frame.f_code
        names.append(f"{os.path.basename(code.co_filename)}:{code.co_name}")
        frame = frame.f_back
    return ";".join(reversed(names))


class _Sampler:
    def __init__(self, out: str) -> None:
        self.out = out
        self.stacks: collections.Counter[str] = collections.Counter()  # microseconds of CPU
        self.clocks: dict[int, float] = {}
        self.totals: dict[str, float] = {}

    def sample(self, me: int) -> None:
        names = {t.ident: t.name.replace(" ", "_") for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            try:
                now = time.clock_gettime(time.pthread_getcpuclockid(ident))
            except OSError:  # the thread just ended
                continue
            used = now - self.clocks.get(ident, now)
            self.clocks[ident] = now
            name = names.get(ident, "?")
            self.totals[name] = now
            if used > 0:
                self.stacks[f"{name};{_stack(frame)}"] += int(used * 1e6)

    def dump(self) -> None:
        with open(self.out + ".tmp", "w") as f:
            for name, seconds in self.totals.items():
                f.write(f"#cpu {name} {seconds:.3f}\n")
            for stack, micros in self.stacks.most_common():
                f.write(f"{stack} {micros}\n")
        os.replace(self.out + ".tmp", self.out)

    def run(self) -> None:
        me = threading.get_ident()
        last = time.monotonic()
        while True:
            time.sleep(INTERVAL)
            self.sample(me)
            if time.monotonic() - last > 2:
                last = time.monotonic()
                self.dump()


if _OUT and "apiserver" in sys.argv:
    _sampler = _Sampler(_OUT)
    threading.Thread(target=_sampler.run, daemon=True, name="profile-sampler").start()
    atexit.register(_sampler.dump)
