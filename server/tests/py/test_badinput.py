"""Bad input: garbage, truncated and oversized frames, malformed records.

What it is: byte-level abuse of each target — garbage before and after the
handshake, truncated frames, a frame over jute.maxbuffer (ZK-BEHAVIOURS 13),
unknown opcodes (ZK-BEHAVIOURS 11), malformed records, invalid paths and
ACLs. Each case gets the reference's answer (pinned in the tables below,
observed on Apache ZooKeeper 3.8.0) or, for ours, a closed connection; and
while it happens a separate session (the prober) keeps getting answers,
which every test asserts at its end.

What it is not: a fuzzer. Inputs are fixed (seeded where random) so a
failure reproduces.

Invariant it keeps: the server process survives every case and the
prober's session sees no error and no long stall.
"""

import random
import socket
import struct
import threading
import time

import pytest

import harness
import zkraw
from zkraw import Err, Op, Writer, frame, request_header

MAX_BUFFER = 1048575  # jute.maxbuffer default: the largest accepted frame body
CLOSED = "closed"


class Prober:
    """Another client that keeps asking while a test misbehaves. It runs
    exists("/") in a loop on its own session, recording answers, errors and
    the longest gap between answers."""

    def __init__(self, server):
        self.server = server
        self.client = server.raw(timeout_ms=10000)
        self.answers = 0
        self.errors = []
        self.max_gap = 0.0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        last = time.monotonic()
        while not self.stop_flag.is_set():
            try:
                r = self.client.exists("/", watch=False)
                if r.err != Err.OK:
                    self.errors.append(r)
            except Exception as e:  # a dropped prober session is a failure
                self.errors.append(repr(e))
                return
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.answers += 1
            time.sleep(0.005)

    def finish(self):
        # It must still be answered after the abuse: a few more answers.
        target = self.answers + 3
        deadline = time.monotonic() + 5.0
        while self.answers < target and not self.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stop_flag.set()
        self.thread.join(10)
        self.client.shutdown()
        assert not self.errors, "prober saw errors: %r" % self.errors[:3]
        assert self.answers >= target, "prober stopped being answered (%d)" % self.answers
        assert self.max_gap < 2.0, "prober stalled for %.2fs" % self.max_gap


@pytest.fixture
def prober(server):
    """A running Prober, checked at the end of the test."""
    p = Prober(server)
    yield p
    p.finish()
    server.assert_serving()


def blast(client, data):
    """Send bad bytes; the server may close before it has read them all."""
    try:
        client.send_bytes(data)
    except zkraw.Closed:
        pass


def outcome(client, wait=3.0):
    """What the server did after the bad bytes: CLOSED, or the first
    frame's header as (xid, err) for replies."""
    try:
        payload = client.recv_frame(wait)
    except zkraw.Closed:
        return CLOSED
    except zkraw.Timeout:
        return "silent"
    r = zkraw.Reader(payload)
    return ("reply", r.int(), r.long(), r.int())


def check_outcome(server, got, expected, name):
    """The reference must match exactly; ours may also close instead."""
    if expected == CLOSED:
        assert got == CLOSED, (name, got)
        return
    xid, err = expected
    if got == CLOSED and server.kind == harness.OURS:
        return
    assert got != CLOSED and got != "silent", (name, got, expected)
    _, gxid, _zxid, gerr = got
    assert (gxid, gerr) == (xid, err), (name, got, expected)


# -- before the handshake


def _connect_body(pw_len=None, pw=b"\x00" * 16):
    w = Writer().int(0).long(0).int(10000).long(0)
    if pw_len is None:
        w.buffer(pw)
    else:
        w.int(pw_len)
    return w.bytes()


PRE_HANDSHAKE = [
    ("http request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", CLOSED),
    ("zero length frame", struct.pack(">i", 0), CLOSED),
    ("negative length", struct.pack(">i", -5), CLOSED),
    ("length over maxbuffer", struct.pack(">i", MAX_BUFFER + 1), CLOSED),
    ("short connect", frame(b"\x00" * 10), CLOSED),
    ("passwd length huge", frame(_connect_body(pw_len=10 ** 9)), CLOSED),
    ("0xa5 junk frame", frame(b"\xa5" * 40), CLOSED),
    ("seeded junk stream", random.Random(1).randbytes(1000), CLOSED),
]


@pytest.mark.parametrize("name,data,expected", PRE_HANDSHAKE, ids=[c[0] for c in PRE_HANDSHAKE])
def test_garbage_before_handshake(server, prober, name, data, expected):
    c = server.raw_unconnected(timeout=5)
    try:
        blast(c, data)
        assert outcome(c) == expected, name
    finally:
        c.close()


def test_odd_but_valid_connects(server, prober):
    # The reference accepts a null password, a negative timeout (clamped) and
    # an unknown protocol version, and ignores trailing bytes; these are what
    # old or sloppy clients send.
    for name, body, timeout in [
        ("null passwd", _connect_body(pw_len=-1), 10000),
        ("empty passwd", _connect_body(pw_len=0), 10000),
        ("negative timeout", Writer().int(0).long(0).int(-5).long(0).buffer(b"\0" * 16).bytes(), 4000),
        ("protocol 99", Writer().int(99).long(0).int(10000).long(0).buffer(b"\0" * 16).bytes(), 10000),
        ("trailing junk", zkraw.connect_request(10000) + b"JUNKJUNK", 10000),
    ]:
        c = server.raw_unconnected(timeout=5)
        try:
            c.send_frame(body)
            r = zkraw.Reader(c.recv_frame(5))
            _proto, tmo, sid = r.int(), r.int(), r.long()
            assert sid != 0 and tmo == timeout, (name, tmo, sid)
            c.session_id = sid
            assert c.exists("/").err == Err.OK, name
            c.close_session()
        finally:
            c.close()


# -- after the handshake


def _h(op, xid=1):
    return request_header(xid, op)


POST_HANDSHAKE = [
    ("zero length frame", struct.pack(">i", 0), CLOSED),
    ("frame shorter than a header", frame(b"\x00\x00\x00\x01"), CLOSED),
    ("negative length", struct.pack(">i", -1), CLOSED),
    ("length 2^31-1", struct.pack(">i", 2 ** 31 - 1), CLOSED),
    ("seeded junk stream", random.Random(1).randbytes(1000), CLOSED),
    ("second ConnectRequest", frame(zkraw.connect_request(10000)), (0, Err.UNIMPLEMENTED)),
    ("getData header only", frame(_h(Op.GET_DATA)), (1, Err.MARSHALLING_ERROR)),
    ("getData truncated path", frame(_h(Op.GET_DATA) + b"\x00\x00"), (1, Err.MARSHALLING_ERROR)),
    ("getData path length 2^31-1", frame(_h(Op.GET_DATA) + Writer().int(2 ** 31 - 1).bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("getData path length -7", frame(_h(Op.GET_DATA) + Writer().int(-7).bool(False).bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("getData null path", frame(_h(Op.GET_DATA) + Writer().string(None).bool(False).bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("create null path", frame(_h(Op.CREATE) + Writer().string(None).buffer(b"")
                               .acls(zkraw.OPEN_ACL_UNSAFE).int(0).bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("create acl count 10^9", frame(_h(Op.CREATE) + Writer().string("/q").buffer(b"").int(10 ** 9)
                                    .bytes()), (1, Err.MARSHALLING_ERROR)),
    ("create acl count -1", frame(_h(Op.CREATE) + Writer().string("/q").buffer(b"").int(-1).int(0)
                                  .bytes()), (1, Err.INVALID_ACL)),
    ("create path not utf-8", frame(_h(Op.CREATE) + Writer().buffer(b"/\xff\xfe").buffer(b"")
                                    .acls(zkraw.OPEN_ACL_UNSAFE).int(0).bytes()),
     (1, Err.BAD_ARGUMENTS)),
    ("setData length 10^9", frame(_h(Op.SET_DATA) + Writer().string("/").int(10 ** 9).bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("delete without version", frame(_h(Op.DELETE) + Writer().string("/none").bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("multi truncated op", frame(_h(Op.MULTI) + Writer().int(1).bool(False).int(-1).bytes()
                                 + b"\x00\x00\x00\x05/a"), (1, Err.MARSHALLING_ERROR)),
    ("multi unknown op type", frame(_h(Op.MULTI) + Writer().int(77).bool(False).int(-1).int(-1)
                                    .bool(True).int(-1).bytes()), (1, Err.MARSHALLING_ERROR)),
    ("setWatches vector 10^9", frame(_h(Op.SET_WATCHES, xid=-8) + Writer().long(0).int(10 ** 9)
                                     .bytes()), (-8, Err.MARSHALLING_ERROR)),
    ("addWatch without mode", frame(_h(Op.ADD_WATCH) + Writer().string("/").bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("removeWatches without type", frame(_h(Op.REMOVE_WATCHES) + Writer().string("/").bytes()),
     (1, Err.MARSHALLING_ERROR)),
    ("auth truncated", frame(_h(Op.AUTH, xid=-4) + b"\x00"), CLOSED),
    ("auth scheme world", frame(_h(Op.AUTH, xid=-4) + Writer().int(0).string("world")
                                .buffer(b"anyone").bytes()), (-4, Err.AUTH_FAILED)),
    ("unknown opcode 999", frame(_h(999) + b"\x00" * 8), (1, Err.UNIMPLEMENTED)),
]


@pytest.mark.parametrize("name,data,expected", POST_HANDSHAKE, ids=[c[0] for c in POST_HANDSHAKE])
def test_garbage_after_handshake(server, prober, name, data, expected):
    c = server.raw(timeout_ms=10000)
    try:
        blast(c, data)
        check_outcome(server, outcome(c), expected, name)
    finally:
        c.shutdown()


def test_session_survives_garbage(server, prober):
    # A bad frame closes one connection, not the session: it can be resumed
    # and still owns its ephemerals.
    c = server.raw(timeout_ms=10000)
    path = "/garbage-survivor-%d" % c.session_id
    assert c.create(path, flags=zkraw.Mode.EPHEMERAL).err == Err.OK
    blast(c, struct.pack(">i", -1))
    assert c.wait_closed(5.0)
    again = server.raw(timeout_ms=10000, session_id=c.session_id, passwd=c.passwd)
    try:
        assert again.session_id == c.session_id
        assert again.exists(path).stat.ephemeralOwner == c.session_id
    finally:
        again.shutdown()


# -- ZK-BEHAVIOURS 13: jute.maxbuffer


def _set_data_frame_of(total, xid, path="/maxbuf"):
    """A setData frame whose body (header included) is exactly `total`."""
    fixed = 8 + 4 + len(path) + 4 + 4
    return frame(request_header(xid, Op.SET_DATA)
                 + Writer().string(path).buffer(b"m" * (total - fixed)).int(-1).bytes())


def test_zkb13_max_buffer(server, prober):
    # ZK-BEHAVIOURS 13: a request frame of exactly 1048575 bytes (header
    # included) is accepted; one byte more closes the connection without a
    # reply, and the session survives.
    c = server.raw(timeout_ms=10000)
    try:
        if c.exists("/maxbuf").err == Err.NO_NODE:
            assert c.create("/maxbuf").err == Err.OK
        c.pending[100] = Op.SET_DATA
        c.send_bytes(_set_data_frame_of(MAX_BUFFER, 100))
        r = c.wait_reply(100, timeout=15)
        assert r.err == Err.OK and r.stat.dataLength == MAX_BUFFER - (8 + 4 + 7 + 4 + 4), r
        c.pending[101] = Op.SET_DATA
        blast(c, _set_data_frame_of(MAX_BUFFER + 1, 101))
        with pytest.raises(zkraw.Closed):
            c.wait_reply(101, timeout=15)
        assert 101 not in c.replies
        again = server.raw(timeout_ms=10000, session_id=c.session_id, passwd=c.passwd)
        try:
            assert again.session_id == c.session_id
            st = again.exists("/maxbuf").stat
            assert st.version == 1, st  # the oversized setData was not applied
            assert again.delete("/maxbuf").err == Err.OK
        finally:
            again.shutdown()
    finally:
        c.close()


# -- truncated and slow frames


def test_truncated_frame_then_close(server, prober):
    # Half a frame, then the client goes away: nothing breaks.
    for cut in (1, 3, 10, 30):
        c = server.raw(timeout_ms=10000)
        body = request_header(1, Op.GET_DATA) + Writer().string("/").bool(False).bytes()
        c.send_bytes(frame(body)[:cut])
        time.sleep(0.05)
        c.close()


def test_partial_frame_does_not_block_others(server, prober):
    # A client stalls in the middle of a frame for a second; the prober keeps
    # being answered meanwhile, and when the rest arrives the request is
    # answered normally.
    c = server.raw(timeout_ms=10000)
    try:
        body = request_header(7, Op.GET_DATA) + Writer().string("/zookeeper").bool(False).bytes()
        data = frame(body)
        c.pending[7] = Op.GET_DATA
        c.send_bytes(data[:9])
        seen = prober.answers
        time.sleep(1.0)
        assert prober.answers > seen + 5, "others were not served during the stall"
        c.send_bytes(data[9:])
        assert c.wait_reply(7).err == Err.OK
    finally:
        c.shutdown()


def test_byte_by_byte_request(server, prober):
    # A request dribbled one byte at a time is reassembled.
    c = server.raw(timeout_ms=10000)
    try:
        data = frame(request_header(9, Op.EXISTS) + Writer().string("/").bool(False).bytes())
        c.pending[9] = Op.EXISTS
        for i in range(len(data)):
            c.send_bytes(data[i:i + 1])
            time.sleep(0.005)
        assert c.wait_reply(9).err == Err.OK
    finally:
        c.shutdown()


def test_stalled_handshakes(server, prober):
    # Many connections that never finish their handshake do not starve the
    # server (the limit per ip, maxClientCnxns=60, is not reached).
    socks = []
    try:
        for i in range(30):
            s = socket.create_connection((server.host, server.port), timeout=5)
            s.sendall(frame(zkraw.connect_request(10000))[: 5 + (i % 20)])
            socks.append(s)
        time.sleep(0.5)
        server.assert_serving()
    finally:
        for s in socks:
            s.close()


def test_many_requests_without_reading_replies(server, prober):
    # A client that writes 2000 requests and reads nothing: the server may
    # stop reading from it or cut it off, but keeps serving others.
    s = socket.create_connection((server.host, server.port), timeout=5)
    try:
        s.sendall(frame(zkraw.connect_request(10000)))
        req = frame(request_header(1, Op.GET_DATA) + Writer().string("/zookeeper/config").bool(False)
                    .bytes())
        s.settimeout(0.5)
        sent = 0
        try:
            for _ in range(2000):
                s.sendall(req)
                sent += 1
        except (socket.timeout, OSError):
            pass
        time.sleep(0.5)
        server.assert_serving()
    finally:
        s.close()


@pytest.mark.parametrize("opcode", [999, 50, 0])
def test_zkb11_unknown_opcode_with_prober(server, prober, opcode):
    # ZK-BEHAVIOURS 11 under observation: Unimplemented, zxid -1, closed.
    c = server.raw(timeout_ms=10000)
    try:
        xid = c.submit(opcode, b"")
        r = c.wait_reply(xid)
        assert (r.err, r.zxid) == (Err.UNIMPLEMENTED, -1), r
        assert c.wait_closed(5.0)
    finally:
        c.close()


def test_invalid_paths_and_acls_keep_serving(server, prober):
    # Invalid paths and ACLs are answered with error codes (values pinned in
    # test_raw.py); none of them disturbs the connection or the prober.
    c = server.raw(timeout_ms=10000)
    try:
        for path in ("", "a", "//", "/a//b", "/a/", "/\x00", "/./x", "/zookeeper/../x", "/\ufffe"):
            r = c.create(path)
            assert r.err in (Err.BAD_ARGUMENTS, Err.NO_NODE), (repr(path), r)
        for acl in ([], [zkraw.ACL(31, "world", "nobody")], [zkraw.ACL(31, "ip", "1.2.3.4/99")],
                    [zkraw.ACL(31, "digest", "x")], [zkraw.ACL(31, "x509", "")]):
            r = c.create("/invalid-acl", acl=acl)
            assert r.err == Err.INVALID_ACL, (acl, r)
        assert c.exists("/").err == Err.OK
    finally:
        c.shutdown()
