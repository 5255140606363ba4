"""Reading Docker's json-file logs (the kubelet's side of `kubectl logs` on a Docker node).

Docker's default log driver, json-file, writes each chunk a container
prints as one JSON object per line in `<data-root>/containers/<id>/<id>-json.log`
(the path is the container's `LogPath` in GET /containers/<id>/json):

    {"log":"hello world\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
    {"log":"a very long line th","stream":"stderr","time":"2024-05-01T10:00:00.2Z"}
    {"log":"at was split\\n","stream":"stderr","time":"2024-05-01T10:00:00.2Z"}

A `log` without a trailing newline is a partial line (Docker splits lines
longer than 16 KiB): the pieces of one stream are joined, as with CRI's
`P` records. Kubernetes' kuberuntime/logs reads both formats
(parseDockerJSONLog beside parseCRILog), and dockershim pointed the
kubelet's /var/log/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log at this
file with a symlink -- docker.py does the same, so the pod log directory
looks alike on both runtimes.

`parse_records` is pure; `read_log` is cri_logs.follow_records run with
this format's parser: read what was appended, parse the complete lines, yield; with
`follow`, at the end of the file ask `exited()` and stop once the container
is gone and the file drained, else sleep 0.2 s. Reading the file instead of
streaming GET /containers/<id>/logs keeps every blocking call out of the
event loop without a thread per follower, and `tail` is the same deque.
"""

from __future__ import annotations

import functools
import json

from kubelet.runtime import cri_logs
from kubelet.runtime.docker_convert import parse_time
from kubelet.runtime.interface import LogLine


def parse_records(data: bytes, partial: dict[str, str]) -> list[LogLine]:
    """Full lines from complete JSON records in `data`; unfinished lines wait in `partial`."""
    out = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # not a json-file record
        if not isinstance(record, dict):
            continue
        stream = str(record.get("stream", "stdout"))
        text = str(record.get("log", ""))
        if not text.endswith("\n"):
            partial[stream] = partial.get(stream, "") + text
            continue
        text = partial.pop(stream, "") + text[:-1]
        try:
            when = parse_time(str(record.get("time", "")))
        except ValueError:
            when = 0.0
        out.append(LogLine(when, stream, text))
    return out


# read_log(path, follow=, tail=, exited=): as cri_logs.read_log, for json-file records.
read_log = functools.partial(cri_logs.follow_records, parse=parse_records)
