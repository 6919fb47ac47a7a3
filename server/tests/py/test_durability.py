"""Durability across a crash, on both servers: what was acknowledged before
kill -9 is there after a restart on the same data directory, sessions
survive the restart (their ephemerals too), and zxids keep growing. Ours
runs once per storage backend (ZK_STORAGE_BACKENDS).

What it is: restart tests through the harness's crash_and_restart. The
crash loops, torn-tail and corruption tests of the storage issue live beside
the storage code; this file pins what a client sees.
"""

import pytest

import harness
from conftest import start_server
from zkraw import Err, Mode, ok


@pytest.fixture(params=harness.durable_targets())
def restartable(request):
    kind, backend = request.param
    return start_server(request, kind, backend=backend)


def test_acknowledged_writes_survive_kill_9(restartable, raw, prefix):
    c = raw(restartable, timeout_ms=30000)
    ok(c.create(prefix, b"root"))
    for i in range(50):
        ok(c.create("%s/n%02d" % (prefix, i), b"v%d" % i))
    ok(c.set_data(prefix + "/n07", b"changed", -1))
    ok(c.delete(prefix + "/n13", -1))
    ok(c.create(prefix + "/eph", b"e", flags=Mode.EPHEMERAL))
    before = ok(c.get_data(prefix + "/n07"))
    session, passwd = c.session_id, c.passwd
    c.close()  # the socket only: the session stays open

    restartable.crash_and_restart()

    d = raw(restartable, timeout_ms=30000)
    children = sorted(ok(d.get_children(prefix)).children)
    assert children == sorted(["n%02d" % i for i in range(50) if i != 13] + ["eph"])
    after = ok(d.get_data(prefix + "/n07"))
    assert after.data == b"changed"
    assert after.stat == before.stat
    # The session survived the restart: it can be resumed and still owns
    # its ephemeral.
    again = raw(restartable, timeout_ms=30000, session_id=session, passwd=passwd)
    assert again.session_id == session
    assert ok(again.exists(prefix + "/eph")).stat.ephemeralOwner == session
    # New writes get zxids above everything before the crash.
    created = ok(d.create2(prefix + "/later", b""))
    assert created.stat.czxid > after.stat.mzxid
