"""Session liveness: what a session that is closing or gone may still do,
and which clock decides when a session expires.

What it is: writes pipelined behind a closeSession are refused, not applied
under the dead session's id (both servers); a step of the wall clock, forward
or back, neither expires live sessions nor keeps dead ones alive (ours, run
under libfaketime with the monotonic clock left real — the reference uses
the same elapsed-time rule).

What it is not: a timing benchmark. Waits are bounded and generous.
"""

import os
import time

import pytest

import harness
from zkraw import ok, Err, Mode, Op, frame, request_header, body_create

TICK_MS = 200
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.fixture(scope="module", params=harness.targets())
def fast(request):
    server = harness.Server(request.param, tick_time=TICK_MS)
    request.addfinalizer(server.stop)
    server.start()
    return server


def test_writes_pipelined_after_close_session_are_refused(fast, raw, prefix):
    # The reference checks every write's session in prep: a create sent
    # right behind the session's own closeSession must not be applied.
    observer = raw(fast, timeout_ms=4000)
    ok(observer.create(prefix))
    doomed = raw(fast, timeout_ms=4000)
    close_xid = doomed.next_xid()
    create_xid = doomed.next_xid()
    doomed.pending[close_xid] = Op.CLOSE_SESSION
    doomed.pending[create_xid] = Op.CREATE
    # One send: both frames reach the server together.
    doomed.send_bytes(
        frame(request_header(close_xid, Op.CLOSE_SESSION))
        + frame(request_header(create_xid, Op.CREATE) + body_create(prefix + "/after"))
    )
    assert doomed.wait_closed(5.0), "closeSession did not close the connection"
    created = doomed.replies.get(create_xid)
    if created is not None:
        assert created.err == Err.SESSION_EXPIRED, created
    assert observer.exists(prefix + "/after").err == Err.NO_NODE


def faked_server(offset_file):
    """Ours under libfaketime: the wall clock reads the offset in
    `offset_file` on every call; the monotonic clock stays real."""
    harness.require_file(FAKETIME_LIB, "faketime")
    with open(offset_file, "w") as f:
        f.write("+0\n")
    server = harness.Server(harness.OURS, tick_time=TICK_MS)
    saved = dict(os.environ)
    os.environ.update({
        "LD_PRELOAD": FAKETIME_LIB,
        "FAKETIME_TIMESTAMP_FILE": offset_file,
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    })
    try:
        server.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return server


def step_wall_clock(offset_file, offset):
    with open(offset_file, "w") as f:
        f.write(offset + "\n")


@pytest.mark.skipif(harness.OURS not in harness.targets(), reason="ours not targeted")
@pytest.mark.parametrize("offset", ["+2h", "+30d"])
def test_wall_clock_step_forward_expires_no_session(tmp_path, offset):
    offset_file = str(tmp_path / "faketime")
    server = faked_server(offset_file)
    try:
        live = server.raw(timeout_ms=2000)
        ok(live.create("/alive", flags=Mode.EPHEMERAL))
        step_wall_clock(offset_file, offset)
        # A client pings at a third of its timeout: ticks pass before its
        # next ping, then it goes on pinging. It must stay alive.
        time.sleep(0.6)
        live.keep_alive(1.5, interval=0.6)
        assert live.is_open(), "the session's connection was closed after a clock step"
        ok(live.exists("/alive"))
        other = server.raw(timeout_ms=2000)
        ok(other.exists("/alive"))
        other.shutdown()
        live.shutdown()
    finally:
        server.stop()


@pytest.mark.skipif(harness.OURS not in harness.targets(), reason="ours not targeted")
def test_wall_clock_step_back_keeps_no_dead_session_alive(tmp_path):
    offset_file = str(tmp_path / "faketime")
    server = faked_server(offset_file)
    try:
        watcher = server.raw(timeout_ms=4000)
        silent = server.raw(timeout_ms=400)
        ok(silent.create("/doomed", flags=Mode.EPHEMERAL))
        step_wall_clock(offset_file, "-2h")
        # A 400 ms session that stops talking expires within a few timeouts,
        # whatever the wall clock says.
        assert silent.wait_closed(5.0), "a silent session outlived a clock step back"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if watcher.exists("/doomed").err == Err.NO_NODE:
                break
            watcher.keep_alive(0.2)
        assert watcher.exists("/doomed").err == Err.NO_NODE
        watcher.shutdown()
    finally:
        server.stop()
