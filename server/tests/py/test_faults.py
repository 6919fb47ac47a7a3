"""A server thread that dies stops the whole server (ours only).

What it is: with the test-only failpoints (`--features failpoints`, armed by
ZK_FAILPOINTS) the sequencer, the applier or an I/O thread panics while
handling one znode path; the process must then exit, not live on as a zombie
that answers `ruok` and serves stale reads while every write hangs. Each
case checks the exit, the log line naming the thread, and that the port no
longer answers.

What it is not: crash recovery (test_crash.py kills with -9 and restarts).
"""

import os
import signal
import socket
import time

import pytest

import harness
import zkraw

pytestmark = pytest.mark.skipif(harness.OURS not in harness.targets(), reason="ours not targeted")


def start_armed(point, path):
    server = harness.Server(harness.OURS)
    saved = dict(os.environ)
    os.environ["ZK_FAILPOINTS"] = "%s=%s" % (point, path)
    try:
        server.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with open(server.log_path, "rb") as f:
        armed = b"failpoints armed" in f.read()
    if not armed:
        # A binary built without the feature ignores ZK_FAILPOINTS.
        server.stop()
        harness.missing("a zk-server built with --features failpoints")
    return server


def wait_exit(server, timeout=15.0):
    try:
        return server.proc.wait(timeout)
    except Exception:
        return None


def refused(server):
    try:
        socket.create_connection((server.host, server.port), timeout=2.0).close()
        return False
    except OSError:
        return True


@pytest.mark.parametrize("point,op", [
    ("sequencer", "create"),
    ("applier", "create"),
    ("io", "get"),
])
def test_a_dead_thread_stops_the_server(point, op):
    server = start_armed(point, "/boom")
    try:
        client = server.raw(timeout_ms=10000)
        if op == "create":
            client.submit(zkraw.Op.CREATE, zkraw.body_create("/boom"))
        else:
            client.submit(zkraw.Op.GET_DATA, zkraw.body_path_watch("/boom", False))
        status = wait_exit(server)
        assert status is not None, "the server lived on after its %s thread panicked" % point
        assert status == -signal.SIGABRT, "exit status %s" % status
        log = server.log_tail()
        assert "failpoint %s hit for /boom" % point in log, log
        assert "the server stops" in log, log
        assert refused(server), "the client port still answers"
    finally:
        server.stop()
