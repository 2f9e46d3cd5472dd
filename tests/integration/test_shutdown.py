"""Stopping the API server: open watches end cleanly and the process exits promptly with success."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from tests.support import ApiServer, free_port


def test_sigterm_ends_open_watches_cleanly(tmp_path: pytest.TempPathFactory) -> None:
    server = ApiServer(tmp_path, free_port()).start()  # type: ignore[arg-type]
    outcomes: list[str] = []
    started = threading.Event()

    def watch() -> None:
        try:
            with (
                server.client(timeout=30) as client,
                client.stream("GET", "/api/v1/namespaces/default/configmaps", params={"watch": "true"}) as stream,
            ):
                started.set()
                lines = [json.loads(line) for line in stream.iter_lines() if line]
            outcomes.append(f"ended after {len(lines)} events")
        except Exception as error:  # the test reports what the client saw
            outcomes.append(f"failed: {type(error).__name__}: {error}")

    watchers = [threading.Thread(target=watch) for _ in range(3)]
    for thread in watchers:
        thread.start()
    assert started.wait(10)
    time.sleep(0.5)
    began = time.monotonic()
    code = server.stop(signal.SIGTERM, timeout=20)
    stopped_in = time.monotonic() - began
    for thread in watchers:
        thread.join(10)
    assert code == 0, server.log()
    assert stopped_in < 10, f"shutdown took {stopped_in:.1f}s"
    assert outcomes == ["ended after 0 events"] * 3, outcomes
    assert "Traceback" not in server.log()
