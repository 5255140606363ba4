"""The official Python client's watch, kept going across API server restarts as users write it.

`kubernetes.watch.Watch().stream(...)` reconnects by itself only when a
stream ends cleanly, and only once after a 410; when the server goes away the
generator raises (urllib3's errors), and after a compaction it raises
ApiException(410). So every long-running watcher written with it has the
same loop, the informer's list-then-watch in a dozen lines:

    rv = list().metadata.resource_version          # the state, and where it was read
    while True:
        try:
            for event in Watch().stream(list_fn, resource_version=rv):
                rv = event["object"].metadata.resource_version   # resume point
                handle(event)
        except ApiException as err:                # 410 Gone: rv was compacted away
            if err.status != 410: raise
            rv = relist()                          # the state again, and watch from there
        except urllib3.exceptions.HTTPError:       # the server is away: wait, retry
            sleep(backoff)

What this test shows against a real server (TLS, SQLite, in a thread; stopped
and started again on the same data directory and port, as a process restart):

1. a watch from a list's resourceVersion sees the writes after it;
2. after a restart the loop reconnects from the last event's resourceVersion
   and gets the writes made while it was away (nothing lost, nothing twice);
3. after a restart and a compaction past that resourceVersion the reconnect is
   410 Gone, the loop lists again (which shows the writes made meanwhile) and
   watches on from the list's resourceVersion.

The loop's "sleep and retry" waits on an event the test sets once the server
is back (and written to, and compacted), so what each reconnect meets is
certain rather than a race with the restart. Skipped where `kubernetes` is
not installed.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.processes import free_port
from tests.unit.apiserver.httpapi.client import configmap
from tests.unit.apiserver.httpapi.server_thread import ServerThread

kubernetes = pytest.importorskip("kubernetes")
urllib3 = pytest.importorskip("urllib3")


class Watcher:
    """The user's loop (module notes), in a thread; what it saw goes to `events`."""

    def __init__(self, server: ServerThread) -> None:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(server.pki / "admin.conf"), client_configuration=config
        )
        config.host = f"https://127.0.0.1:{server.port}"
        config.retries = 0  # urllib3 must not retry on its own: the loop does
        self.core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.relists: queue.Queue[list[str]] = queue.Queue()
        self.disconnects = 0
        self.server_back = threading.Event()
        self.done = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _list(self) -> str:
        listed = self.core.list_namespaced_config_map("default")
        self.relists.put(sorted(item.metadata.name for item in listed.items))
        version: str = listed.metadata.resource_version
        return version

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the test reports it
            self.failure = exc

    def _loop(self) -> None:
        rv = self._list()
        while not self.done.is_set():
            try:
                for event in kubernetes.watch.Watch().stream(
                    self.core.list_namespaced_config_map, "default", resource_version=rv
                ):
                    rv = event["object"].metadata.resource_version
                    self.events.put((event["type"], event["object"].metadata.name))
            except kubernetes.client.ApiException as err:
                if err.status != 410:
                    raise
                rv = self._list()  # too old: the state again, and watch from there
            except (urllib3.exceptions.HTTPError, OSError):
                if self.done.is_set():
                    return
                self.disconnects += 1
                self.server_back.wait(timeout=30)  # a user's loop sleeps here, then retries

    def next_event(self) -> tuple[str, str]:
        try:
            return self.events.get(timeout=15)
        except queue.Empty:
            raise AssertionError(f"no event; the loop ended with {self.failure!r}") from None

    def stop(self, server: ServerThread) -> None:
        """End the loop: told to stop, its stream cut by the server going away."""
        self.done.set()
        self.server_back.set()
        server.halt()
        self.thread.join(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(tmp_path, port=free_port())
    try:
        yield running
    finally:
        running.stop()


def _create(server: ServerThread, name: str) -> None:
    answer = server.admin()._do(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json.dumps(configmap(name)).encode(),
        {"Content-Type": "application/json"},
    )
    assert answer.status == 201, answer.body


def _restart(server: ServerThread, watcher: Watcher) -> None:
    watcher.server_back.clear()
    disconnects = watcher.disconnects
    server.halt()
    server.resume()
    deadline = time.monotonic() + 10
    while watcher.disconnects == disconnects and time.monotonic() < deadline:
        time.sleep(0.05)  # the loop has noticed the server left before anything is written
    assert watcher.disconnects > disconnects


def test_watch_resumes_across_restarts_and_relists_after_410(server: ServerThread) -> None:
    _create(server, "before")
    watcher = Watcher(server)
    watcher.thread.start()
    try:
        assert watcher.relists.get(timeout=15) == ["before"]
        _create(server, "first")
        assert watcher.next_event() == ("ADDED", "first")

        _restart(server, watcher)  # 2: resumed from the last event's resourceVersion
        _create(server, "while-away")
        watcher.server_back.set()
        assert watcher.next_event() == ("ADDED", "while-away")
        _create(server, "after")
        assert watcher.next_event() == ("ADDED", "after")
        assert watcher.relists.empty()  # no list was needed

        _restart(server, watcher)  # 3: the resume point compacted away: 410, then a list
        _create(server, "unseen")
        server.compact()
        watcher.server_back.set()
        assert watcher.relists.get(timeout=15) == [
            "after",
            "before",
            "first",
            "unseen",
            "while-away",
        ]
        _create(server, "last")
        assert watcher.next_event() == ("ADDED", "last")
        assert watcher.events.empty()  # "unseen" came by the list, never as an event
    finally:
        watcher.stop(server)
    assert watcher.failure is None, watcher.failure
