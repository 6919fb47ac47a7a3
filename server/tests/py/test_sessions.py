"""Session lifecycle on a server with a short tickTime (200 ms).

What it is: expiry (ephemerals deleted, other sessions' watches fire, the
expired session cannot be resumed), reconnect with session move (a second
connection presenting the first's id and password takes the session over:
the old connection is closed, the ephemerals survive), wrong passwords,
timeout negotiation, and closeSession — with the raw client and kazoo.

What it is not: a timing benchmark. Waits are bounded and generous: expiry
must happen within a few session timeouts, not at an exact instant.

Invariant it keeps: the sessions that must stay alive are pinged (raw
clients via `keep_alive`/`wait_event(keepalive=...)`, kazoo on its own).
"""

import time

import pytest

import harness
from zkraw import ok, Err, EventType, Mode, connect_request

TICK_MS = 200


@pytest.fixture(scope="module", params=harness.targets())
def fast(request):
    """A server with tickTime 200: session timeouts from 400 to 4000 ms."""
    server = harness.Server(request.param, tick_time=TICK_MS)
    request.addfinalizer(server.stop)
    server.start()
    return server


def test_timeout_clamped_to_ticks(fast):
    # Negotiated timeouts are clamped to [2, 20] ticks.
    for asked, expected in ((1, 400), (300, 400), (1000, 1000), (4000, 4000), (60000, 4000)):
        c = fast.raw_unconnected()
        try:
            assert c.connect(timeout_ms=asked).timeout == expected, asked
            c.close_session()
        finally:
            c.close()


def test_expiry_deletes_ephemerals_and_fires_watches(fast, raw, prefix):
    # DESIGN "Sessions": expiry is a closeSession txn that deletes the
    # session's ephemerals and fires their watches in other sessions; the
    # expired session's connection is closed and it cannot be resumed.
    watcher = raw(fast, timeout_ms=4000)
    ok(watcher.create(prefix))
    doomed = raw(fast, timeout_ms=400)
    assert doomed.negotiated_timeout == 400
    ok(doomed.create(prefix + "/e", flags=Mode.EPHEMERAL))
    ok(doomed.create(prefix + "/es-", flags=Mode.EPHEMERAL_SEQUENTIAL))
    ok(watcher.exists(prefix + "/e", watch=True))
    ok(watcher.get_children(prefix, watch=True))
    before = watcher.last_zxid()
    # Stop talking: no pings. The server must notice within a few timeouts.
    start = time.monotonic()
    assert doomed.wait_closed(5.0), "expired session's connection was not closed"
    elapsed = time.monotonic() - start
    assert elapsed >= 0.2, "closed too early (%.2fs) for a 400 ms session" % elapsed
    events = []
    deadline = time.monotonic() + 5
    while len(events) < 2 and time.monotonic() < deadline:
        events.append(watcher.wait_event(timeout=5, keepalive=0.3))
    assert sorted((e.type, e.path) for e in events) == sorted([
        (EventType.NODE_DELETED, prefix + "/e"),
        (EventType.NODE_CHILDREN_CHANGED, prefix),
    ])
    assert ok(watcher.get_children(prefix)).children == []
    # The expiry consumed exactly one zxid (a closeSession txn).
    assert watcher.last_zxid() == before + 1
    again = fast.raw_unconnected()
    try:
        resp = again.connect(timeout_ms=4000, session_id=doomed.session_id, passwd=doomed.passwd)
        assert (resp.timeout, resp.session_id) == (0, 0), resp
        assert again.wait_closed(5.0)
    finally:
        again.close()


def test_dropped_connection_keeps_session_until_timeout(fast, raw, prefix):
    # A TCP drop is not a close: the ephemeral stays until the session
    # times out, and the session can be resumed before that.
    watcher = raw(fast, timeout_ms=4000)
    ok(watcher.create(prefix))
    owner = raw(fast, timeout_ms=1000)
    ok(owner.create(prefix + "/e", flags=Mode.EPHEMERAL))
    sid, pw = owner.session_id, owner.passwd
    owner.close()
    assert ok(watcher.exists(prefix + "/e")).stat.ephemeralOwner == sid
    resumed = raw(fast, timeout_ms=1000, session_id=sid, passwd=pw)
    assert resumed.session_id == sid and resumed.negotiated_timeout == 1000
    assert ok(resumed.get_ephemerals(prefix)).children == [prefix + "/e"]
    resumed.close()
    ok(watcher.exists(prefix + "/e", watch=True))
    ev = watcher.wait_event(timeout=6, keepalive=0.3)
    assert (ev.type, ev.path) == (EventType.NODE_DELETED, prefix + "/e")


def test_session_move_raw(fast, raw, prefix):
    # Reconnect with session move: a second connection with the first's
    # session id and password gets the same session; the server closes the
    # old connection; the ephemerals survive and stay owned by the session.
    first = raw(fast, timeout_ms=4000)
    ok(first.create(prefix))
    ok(first.create(prefix + "/e", b"mine", flags=Mode.EPHEMERAL))
    sid = first.session_id
    second = raw(fast, timeout_ms=4000, session_id=sid, passwd=first.passwd)
    assert second.session_id == sid and second.passwd == first.passwd
    assert first.wait_closed(5.0), "old connection must be closed after the session moved"
    observer = raw(fast, timeout_ms=4000)
    st = ok(observer.exists(prefix + "/e")).stat
    assert st.ephemeralOwner == sid
    # The moved session works and still owns its ephemerals.
    assert ok(second.get_ephemerals(prefix)).children == [prefix + "/e"]
    ok(second.set_data(prefix + "/e", b"still mine"))
    second.keep_alive(1.0)  # longer than nothing, shorter than the timeout
    assert ok(observer.get_data(prefix + "/e")).data == b"still mine"
    ok(second.close_session())
    assert observer.exists(prefix + "/e").err == Err.NO_NODE


def test_session_move_to_kazoo(fast, raw, kazoo, prefix):
    # The same move, with kazoo taking over a raw client's session.
    first = raw(fast, timeout_ms=4000)
    ok(first.create(prefix))
    ok(first.create(prefix + "/e", flags=Mode.EPHEMERAL))
    zk = kazoo(fast, timeout=4.0, client_id=(first.session_id, first.passwd))
    assert zk.client_id[0] == first.session_id
    assert first.wait_closed(5.0)
    assert zk.exists(prefix + "/e").ephemeralOwner == first.session_id
    zk.create(prefix + "/e2", ephemeral=True)
    zk.stop()
    observer = raw(fast, timeout_ms=4000)
    assert observer.exists(prefix + "/e").err == Err.NO_NODE
    assert observer.exists(prefix + "/e2").err == Err.NO_NODE


def test_wrong_password_rejected(fast, raw, prefix):
    # A reconnect with the right id and a wrong password is refused like an
    # expired session (timeout 0, session 0, then closed). The reference
    # closes the session's current connection before it checks the password
    # (so the owner sees a disconnect), but the session itself survives and
    # is resumed with the right password.
    owner = raw(fast, timeout_ms=4000)
    ok(owner.create(prefix, flags=Mode.EPHEMERAL))
    bad = fast.raw_unconnected()
    try:
        resp = bad.connect(timeout_ms=4000, session_id=owner.session_id, passwd=b"\x01" * 16)
        assert (resp.timeout, resp.session_id) == (0, 0), resp
        assert resp.passwd == b"\x00" * 16
        assert bad.wait_closed(5.0)
    finally:
        bad.close()
    if fast.kind == "reference":
        assert owner.wait_closed(1.0), (
            "the reference closes the session's connection on any reconnect attempt, "
            "even one with a wrong password")
    else:
        # Known difference (see KNOWN_DIFFERENCES in test_differential.py):
        # an impostor with a wrong password does not disconnect the owner.
        assert not owner.wait_closed(1.0)
        ok(owner.exists(prefix))
    again = raw(fast, timeout_ms=4000, session_id=owner.session_id, passwd=owner.passwd)
    assert again.session_id == owner.session_id
    assert ok(again.exists(prefix)).stat.ephemeralOwner == owner.session_id


def test_unknown_session_id_rejected(fast):
    # A session id the server never issued is refused the same way.
    c = fast.raw_unconnected()
    try:
        resp = c.connect(timeout_ms=4000, session_id=0x7123456789AB, passwd=b"\x00" * 16)
        assert (resp.timeout, resp.session_id) == (0, 0), resp
        assert c.wait_closed(5.0)
    finally:
        c.close()


def test_client_ahead_of_server_refused(fast, raw):
    # A client that has seen a zxid the server has not (lastZxidSeen ahead)
    # is refused without a session: the connection is closed.
    probe = raw(fast, timeout_ms=4000)
    last = probe.last_zxid()
    c = fast.raw_unconnected()
    try:
        c.send_frame(connect_request(4000, 0, b"\x00" * 16, last + 1000))
        assert c.wait_closed(5.0)
        assert not c.replies
    finally:
        c.close()
    # ... and that did not create a session (no zxid consumed).
    assert probe.last_zxid() == last


def test_kazoo_session_survives_idle_period(fast, kazoo, prefix):
    # kazoo's pings keep a short session alive across several timeouts.
    zk = kazoo(fast, timeout=1.0)
    zk.create(prefix, ephemeral=True)
    sid = zk.client_id[0]
    time.sleep(2.5)
    assert zk.exists(prefix).ephemeralOwner == sid
    assert zk.client_id[0] == sid


def test_expiry_seen_by_kazoo_watchers(fast, raw, kazoo, prefix):
    # The same expiry seen through kazoo: its exists watch and ChildrenWatch
    # recipe fire when another session's ephemeral goes with the session.
    zk = kazoo(fast, timeout=4.0)
    zk.create(prefix)
    doomed = raw(fast, timeout_ms=400)
    ok(doomed.create(prefix + "/e", flags=Mode.EPHEMERAL))
    fired = []
    kids_seen = []
    assert zk.exists(prefix + "/e", watch=lambda ev: fired.append((ev.type, ev.path)))
    zk.ChildrenWatch(prefix, lambda kids: kids_seen.append(sorted(kids)))
    harness.wait_until(lambda: kids_seen == [["e"]], what="initial ChildrenWatch call")
    doomed.close()  # drop the socket without closing the session
    harness.wait_until(lambda: fired and kids_seen[-1] == [], timeout=10,
                       what="kazoo watches after expiry")
    assert fired == [("DELETED", prefix + "/e")]
    assert zk.exists(prefix + "/e") is None
