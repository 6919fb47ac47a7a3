"""A small raw ZooKeeper client that speaks jute directly.

What it is: a test tool that frames and parses the client protocol by hand
(connect handshake with or without the trailing readOnly byte, every request
opcode, every reply shape including multi, watch events with their reply
header), so tests can see what kazoo hides: null data (length -1), exact
error codes, reply zxids, per-op multi results, the order in which events and
replies arrive, and what happens to arbitrary bytes.

What it is not: a real client. It does no reconnects, no pings on its own, no
chroot, no retries. One object is one TCP connection; a "reconnect" is a new
object given the old session id and password.

Invariant it keeps: every frame read from the socket is appended, in arrival
order, to `self.log` (events and replies alike), so tests can assert the wire
order of events against replies (DESIGN invariant 2, ZK-BEHAVIOURS 16).

Wire facts (record layouts, opcodes, error codes) come from Apache
ZooKeeper's zookeeper.jute and ZooDefs; the code is ours.
"""

import collections
import select
import socket
import struct
import time


class Op:
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


class Err:
    OK = 0
    SYSTEM_ERROR = -1
    RUNTIME_INCONSISTENCY = -2
    DATA_INCONSISTENCY = -3
    CONNECTION_LOSS = -4
    MARSHALLING_ERROR = -5
    UNIMPLEMENTED = -6
    OPERATION_TIMEOUT = -7
    BAD_ARGUMENTS = -8
    UNKNOWN_SESSION = -12
    API_ERROR = -100
    NO_NODE = -101
    NO_AUTH = -102
    BAD_VERSION = -103
    NO_CHILDREN_FOR_EPHEMERALS = -108
    NODE_EXISTS = -110
    NOT_EMPTY = -111
    SESSION_EXPIRED = -112
    INVALID_CALLBACK = -113
    INVALID_ACL = -114
    AUTH_FAILED = -115
    SESSION_MOVED = -118
    NOT_READ_ONLY = -119
    NO_WATCHER = -121
    RECONFIG_DISABLED = -123
    QUOTA_EXCEEDED = -125
    THROTTLED = -127


ERR_NAMES = {v: k for k, v in vars(Err).items() if not k.startswith("_")}


def err_name(code):
    return ERR_NAMES.get(code, str(code))


class Perm:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class Mode:
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class EventType:
    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4
    DATA_WATCH_REMOVED = 5
    CHILD_WATCH_REMOVED = 6
    PERSISTENT_WATCH_REMOVED = 7


class WatcherType:
    """removeWatches / checkWatches `type` field."""

    CHILDREN = 1
    DATA = 2
    ANY = 3
    PERSISTENT = 4
    PERSISTENT_RECURSIVE = 5


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


# Special xids the protocol reserves.
XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8

ACL = collections.namedtuple("ACL", "perms scheme id")
OPEN_ACL_UNSAFE = [ACL(Perm.ALL, "world", "anyone")]
READ_ACL_UNSAFE = [ACL(Perm.READ, "world", "anyone")]
CREATOR_ALL_ACL = [ACL(Perm.ALL, "auth", "")]

Stat = collections.namedtuple(
    "Stat",
    "czxid mzxid ctime mtime version cversion aversion ephemeralOwner "
    "dataLength numChildren pzxid",
)
Event = collections.namedtuple("Event", "type state path zxid")
ConnectResponse = collections.namedtuple(
    "ConnectResponse", "protocol_version timeout session_id passwd read_only"
)
ClientInfo = collections.namedtuple("ClientInfo", "scheme user")
# One entry of a multi / multiRead reply: `op` is the header type (-1 for an
# error entry), `err` the header err, and the parsed body fields.
MultiResult = collections.namedtuple("MultiResult", "op err path stat data children")


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class Timeout(Exception):
    """Nothing arrived within the allowed time."""


class ProtocolError(Exception):
    """The server sent bytes that do not parse."""


# ---------------------------------------------------------------- encoding


class Writer:
    def __init__(self):
        self.buf = bytearray()

    def int(self, v):
        self.buf += struct.pack(">i", v)
        return self

    def long(self, v):
        self.buf += struct.pack(">q", v)
        return self

    def bool(self, v):
        self.buf += b"\x01" if v else b"\x00"
        return self

    def buffer(self, v):
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.buf += v
        return self

    def string(self, v):
        if v is None:
            return self.int(-1)
        if isinstance(v, str):
            v = v.encode("utf-8")
        return self.buffer(v)

    def strings(self, vs):
        if vs is None:
            return self.int(-1)
        self.int(len(vs))
        for v in vs:
            self.string(v)
        return self

    def acls(self, acls):
        if acls is None:
            return self.int(-1)
        self.int(len(acls))
        for a in acls:
            self.int(a[0]).string(a[1]).string(a[2])
        return self

    def raw(self, b):
        self.buf += b
        return self

    def bytes(self):
        return bytes(self.buf)


class Reader:
    def __init__(self, data, offset=0):
        self.data = data
        self.pos = offset

    def _take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(
                "short read: need %d bytes at %d of %d" % (n, self.pos, len(self.data))
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self):
        return struct.unpack(">i", self._take(4))[0]

    def long(self):
        return struct.unpack(">q", self._take(8))[0]

    def bool(self):
        return self._take(1) != b"\x00"

    def buffer(self):
        n = self.int()
        if n < 0:
            return None
        return bytes(self._take(n))

    def string(self):
        b = self.buffer()
        return None if b is None else b.decode("utf-8", "replace")

    def strings(self):
        n = self.int()
        if n < 0:
            return None
        return [self.string() for _ in range(n)]

    def acls(self):
        n = self.int()
        if n < 0:
            return None
        return [ACL(self.int(), self.string(), self.string()) for _ in range(n)]

    def stat(self):
        return Stat(
            self.long(), self.long(), self.long(), self.long(),
            self.int(), self.int(), self.int(), self.long(),
            self.int(), self.int(), self.long(),
        )

    def remaining(self):
        return len(self.data) - self.pos


def frame(payload):
    """Length-prefix a payload as the protocol frames every packet."""
    return struct.pack(">i", len(payload)) + payload


def request_header(xid, op):
    return struct.pack(">ii", xid, op)


def connect_request(timeout_ms=30000, session_id=0, passwd=b"\x00" * 16,
                    last_zxid=0, read_only=False, protocol_version=0):
    """ConnectRequest bytes (no length prefix). read_only=None omits the
    trailing readOnly byte, as pre-3.4 clients do."""
    w = Writer().int(protocol_version).long(last_zxid).int(timeout_ms)
    w.long(session_id).buffer(passwd)
    if read_only is not None:
        w.bool(read_only)
    return w.bytes()


# Bodies of single requests, shared by top-level calls and multi ops.


def body_create(path, data=b"", acl=None, flags=0, ttl=None):
    w = Writer().string(path).buffer(data).acls(OPEN_ACL_UNSAFE if acl is None else acl)
    w.int(flags)
    if ttl is not None:
        w.long(ttl)
    return w.bytes()


def body_path_version(path, version):
    return Writer().string(path).int(version).bytes()


def body_path_watch(path, watch):
    return Writer().string(path).bool(watch).bytes()


def body_set_data(path, data, version=-1):
    return Writer().string(path).buffer(data).int(version).bytes()


def body_path(path):
    return Writer().string(path).bytes()


# Multi ops: (opcode, body bytes). Use with Client.multi / multi_read.


def op_create(path, data=b"", acl=None, flags=0, ttl=None, op=None):
    if op is None:
        op = Op.CREATE_TTL if ttl is not None else Op.CREATE
    return (op, body_create(path, data, acl, flags, ttl))


def op_create2(path, data=b"", acl=None, flags=0):
    return (Op.CREATE2, body_create(path, data, acl, flags))


def op_delete(path, version=-1):
    return (Op.DELETE, body_path_version(path, version))


def op_set_data(path, data, version=-1):
    return (Op.SET_DATA, body_set_data(path, data, version))


def op_check(path, version):
    return (Op.CHECK, body_path_version(path, version))


def op_get_children(path, watch=False):
    # Inside a multi the read records are GetChildrenRequest/GetDataRequest,
    # watch flag included (clients always send false).
    return (Op.GET_CHILDREN, body_path_watch(path, watch))


def op_get_data(path, watch=False):
    return (Op.GET_DATA, body_path_watch(path, watch))


def multi_body(ops):
    w = Writer()
    for opcode, body in ops:
        w.int(opcode).bool(False).int(-1).raw(body)
    w.int(-1).bool(True).int(-1)
    return w.bytes()


# ---------------------------------------------------------------- replies


class Reply:
    """One reply: header fields plus whatever the body parsed into."""

    def __init__(self, xid, zxid, err, op, body):
        self.xid = xid
        self.zxid = zxid
        self.err = err
        self.op = op
        self.body = body  # raw body bytes after the header
        self.path = None
        self.stat = None
        self.data = None
        self.children = None
        self.acl = None
        self.results = None
        self.total = None
        self.ids = None

    @property
    def ok(self):
        return self.err == Err.OK

    def __repr__(self):
        fields = ["xid=%d" % self.xid, "zxid=%#x" % self.zxid, "err=%s" % err_name(self.err)]
        for name in ("path", "stat", "data", "children", "acl", "results", "total", "ids"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, bytes) and len(v) > 64:
                    v = v[:64] + b"...(%d bytes)" % len(v)
                fields.append("%s=%r" % (name, v))
        if self.body and all(
            getattr(self, n) is None
            for n in ("path", "stat", "data", "children", "acl", "results", "total", "ids")
        ):
            fields.append("body=%r" % self.body[:64])
        return "Reply(%s)" % ", ".join(fields)


def parse_multi(r):
    results = []
    while True:
        op, done, err = r.int(), r.bool(), r.int()
        if done:
            break
        path = stat = data = children = None
        if op == -1:
            err = r.int()  # ErrorResponse
        elif op == Op.CREATE:
            path = r.string()
        elif op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
            path = r.string()
            stat = r.stat()
        elif op == Op.SET_DATA:
            stat = r.stat()
        elif op == Op.GET_CHILDREN:
            children = r.strings()
        elif op == Op.GET_DATA:
            data = r.buffer()
            stat = r.stat()
        elif op in (Op.DELETE, Op.CHECK):
            pass
        else:
            raise ProtocolError("unknown multi result type %d" % op)
        results.append(MultiResult(op, err, path, stat, data, children))
    return results


def parse_body(reply):
    """Fill a Reply's fields from its body according to its opcode. Error
    replies carry no body except multi (err 0 with per-op results)."""
    if reply.err != Err.OK or not reply.body:
        return reply
    r = Reader(reply.body)
    op = reply.op
    if op == Op.CREATE:
        reply.path = r.string()
    elif op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        reply.path = r.string()
        reply.stat = r.stat()
    elif op in (Op.EXISTS, Op.SET_DATA, Op.SET_ACL):
        reply.stat = r.stat()
    elif op == Op.GET_DATA:
        reply.data = r.buffer()
        reply.stat = r.stat()
    elif op == Op.GET_ACL:
        reply.acl = r.acls()
        reply.stat = r.stat()
    elif op in (Op.GET_CHILDREN, Op.GET_EPHEMERALS):
        reply.children = r.strings()
    elif op == Op.GET_CHILDREN2:
        reply.children = r.strings()
        reply.stat = r.stat()
    elif op == Op.SYNC:
        reply.path = r.string()
    elif op in (Op.MULTI, Op.MULTI_READ):
        reply.results = parse_multi(r)
    elif op == Op.GET_ALL_CHILDREN_NUMBER:
        reply.total = r.int()
    elif op == Op.WHO_AM_I:
        n = r.int()
        reply.ids = [ClientInfo(r.string(), r.string()) for _ in range(max(n, 0))]
    return reply


# ---------------------------------------------------------------- client


class Client:
    """One TCP connection to a server. `connect()` does the handshake;
    requests are then sent with `call` (one at a time) or `submit` +
    `wait_reply` (pipelined)."""

    def __init__(self, host, port, timeout=10.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbuf = bytearray()
        self.xid = 0
        self.pending = {}  # xid -> opcode
        self.replies = {}  # xid -> Reply, arrived but not yet collected
        self.events = collections.deque()  # Event, not yet collected
        self.log = []  # ("event", Event) / ("reply", Reply), wire order
        self.session_id = None
        self.passwd = None
        self.negotiated_timeout = None
        self.connect_response = None
        self.closed = False

    # -- raw bytes

    def send_bytes(self, data):
        """Send raw bytes. A server that closes while we are still sending
        (it may, after reading a bad length) shows up as Closed."""
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.closed = True
            raise Closed("closed while sending: %s" % e)

    def send_frame(self, payload):
        self.send_bytes(frame(payload))

    def _fill(self, deadline):
        """Read what is available into inbuf; raise Closed on EOF/reset and
        Timeout past the deadline."""
        if self.closed:
            raise Closed("connection already closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("no data within the time allowed")
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise Timeout("no data within the time allowed")
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.closed = True
            raise Closed(str(e))
        except socket.timeout:
            raise Timeout("recv timed out")
        if not chunk:
            self.closed = True
            raise Closed("EOF")
        self.inbuf += chunk

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.inbuf) < 4:
            self._fill(deadline)
        (n,) = struct.unpack(">i", self.inbuf[:4])
        if n < 0 or n > 64 << 20:
            raise ProtocolError("bad frame length %d" % n)
        while len(self.inbuf) < 4 + n:
            self._fill(deadline)
        payload = bytes(self.inbuf[4 : 4 + n])
        del self.inbuf[: 4 + n]
        return payload

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection within `timeout`
        (frames that arrive before the close are still dispatched)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._read_one(deadline - time.monotonic())
        except Closed:
            return True
        except Timeout:
            return False
        return False

    def is_open(self, timeout=0.2):
        """False if the server has closed the connection (checked by waiting
        briefly for EOF)."""
        return not self.wait_closed(timeout)

    def close(self):
        """Drop the TCP connection without closing the session."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    # -- handshake

    def connect(self, timeout_ms=30000, session_id=0, passwd=b"\x00" * 16,
                last_zxid=0, read_only=False, protocol_version=0):
        """Send a ConnectRequest and parse the ConnectResponse. The
        response's readOnly byte is None when the server omitted it."""
        self.send_frame(connect_request(timeout_ms, session_id, passwd, last_zxid,
                                        read_only, protocol_version))
        payload = self.recv_frame()
        r = Reader(payload)
        proto, tmo, sid, pw = r.int(), r.int(), r.long(), r.buffer()
        ro = r.bool() if r.remaining() >= 1 else None
        resp = ConnectResponse(proto, tmo, sid, pw, ro)
        self.connect_response = resp
        self.session_id = sid
        self.passwd = pw
        self.negotiated_timeout = tmo
        return resp

    # -- requests

    def next_xid(self):
        self.xid += 1
        return self.xid

    def submit(self, op, body=b"", xid=None):
        """Send one request without waiting; returns its xid."""
        if xid is None:
            xid = self.next_xid()
        self.pending[xid] = op
        self.send_frame(request_header(xid, op) + body)
        return xid

    def _read_one(self, timeout):
        payload = self.recv_frame(timeout)
        r = Reader(payload)
        xid, zxid, err = r.int(), r.long(), r.int()
        if xid == XID_NOTIFICATION:
            ev = Event(r.int(), r.int(), r.string(), zxid)
            self.events.append(ev)
            self.log.append(("event", ev))
            return ev
        op = self.pending.pop(xid, None)
        if op is None:
            op = {XID_PING: Op.PING, XID_AUTH: Op.AUTH, XID_SET_WATCHES: Op.SET_WATCHES}.get(
                xid, None)
        reply = Reply(xid, zxid, err, op, payload[16:])
        parse_body(reply)
        self.replies[xid] = reply
        self.log.append(("reply", reply))
        return reply

    def wait_reply(self, xid, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while xid not in self.replies:
            self._read_one(deadline - time.monotonic())
        return self.replies.pop(xid)

    def call(self, op, body=b"", xid=None, timeout=None):
        xid = self.submit(op, body, xid)
        return self.wait_reply(xid, timeout)

    def wait_event(self, timeout=None, keepalive=None):
        """The next event not yet collected, waiting up to `timeout`. With
        `keepalive` (seconds), a ping is sent whenever the connection has
        been quiet that long, so a short session does not expire while we
        wait."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout("no event within the time allowed")
            try:
                self._read_one(remaining if keepalive is None else min(remaining, keepalive))
            except Timeout:
                if keepalive is None or time.monotonic() >= deadline:
                    raise
                self.submit(Op.PING, b"", xid=XID_PING)
        return self.events.popleft()

    def keep_alive(self, seconds, interval=0.1):
        """Ping every `interval` for `seconds`, collecting whatever arrives."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.submit(Op.PING, b"", xid=XID_PING)
            try:
                while True:
                    self._read_one(min(interval, max(deadline - time.monotonic(), 0.001)))
            except Timeout:
                pass

    def drain_events(self, quiet=0.3):
        """Collect every event that arrives until `quiet` seconds pass
        without one; returns them in order."""
        out = list(self.events)
        self.events.clear()
        deadline = time.monotonic() + quiet
        while True:
            try:
                self._read_one(max(deadline - time.monotonic(), 0.001))
            except Timeout:
                break
            out.extend(self.events)
            self.events.clear()
        return out

    # -- typed requests

    def create(self, path, data=b"", acl=None, flags=0, ttl=None, op=None):
        if op is None:
            op = Op.CREATE_TTL if ttl is not None else Op.CREATE
        return self.call(op, body_create(path, data, acl, flags, ttl))

    def create2(self, path, data=b"", acl=None, flags=0):
        return self.call(Op.CREATE2, body_create(path, data, acl, flags))

    def create_container(self, path, data=b"", acl=None, flags=Mode.CONTAINER):
        return self.call(Op.CREATE_CONTAINER, body_create(path, data, acl, flags))

    def create_ttl(self, path, data=b"", acl=None, flags=Mode.PERSISTENT_WITH_TTL, ttl=1000):
        return self.call(Op.CREATE_TTL, body_create(path, data, acl, flags, ttl))

    def delete(self, path, version=-1):
        return self.call(Op.DELETE, body_path_version(path, version))

    def exists(self, path, watch=False):
        return self.call(Op.EXISTS, body_path_watch(path, watch))

    def get_data(self, path, watch=False):
        return self.call(Op.GET_DATA, body_path_watch(path, watch))

    def set_data(self, path, data, version=-1):
        return self.call(Op.SET_DATA, body_set_data(path, data, version))

    def get_acl(self, path):
        return self.call(Op.GET_ACL, body_path(path))

    def set_acl(self, path, acl, version=-1):
        return self.call(Op.SET_ACL, Writer().string(path).acls(acl).int(version).bytes())

    def get_children(self, path, watch=False):
        return self.call(Op.GET_CHILDREN, body_path_watch(path, watch))

    def get_children2(self, path, watch=False):
        return self.call(Op.GET_CHILDREN2, body_path_watch(path, watch))

    def sync(self, path):
        return self.call(Op.SYNC, body_path(path))

    def ping(self):
        return self.call(Op.PING, b"", xid=XID_PING)

    def check(self, path, version):
        """A top-level check (opcode 13 outside a multi)."""
        return self.call(Op.CHECK, body_path_version(path, version))

    def multi(self, ops):
        return self.call(Op.MULTI, multi_body(ops))

    def multi_read(self, ops):
        return self.call(Op.MULTI_READ, multi_body(ops))

    def check_watches(self, path, watcher_type):
        return self.call(Op.CHECK_WATCHES, Writer().string(path).int(watcher_type).bytes())

    def remove_watches(self, path, watcher_type):
        return self.call(Op.REMOVE_WATCHES, Writer().string(path).int(watcher_type).bytes())

    def auth(self, scheme, credential, auth_type=0):
        if isinstance(credential, str):
            credential = credential.encode()
        body = Writer().int(auth_type).string(scheme).buffer(credential).bytes()
        return self.call(Op.AUTH, body, xid=XID_AUTH)

    def set_watches(self, relative_zxid, data=(), exist=(), child=()):
        body = Writer().long(relative_zxid).strings(list(data)).strings(list(exist))
        body.strings(list(child))
        return self.call(Op.SET_WATCHES, body.bytes(), xid=XID_SET_WATCHES)

    def set_watches2(self, relative_zxid, data=(), exist=(), child=(), persistent=(),
                     persistent_recursive=()):
        body = Writer().long(relative_zxid).strings(list(data)).strings(list(exist))
        body.strings(list(child)).strings(list(persistent)).strings(list(persistent_recursive))
        return self.call(Op.SET_WATCHES2, body.bytes(), xid=XID_SET_WATCHES)

    def get_ephemerals(self, prefix):
        return self.call(Op.GET_EPHEMERALS, body_path(prefix))

    def get_all_children_number(self, path):
        return self.call(Op.GET_ALL_CHILDREN_NUMBER, body_path(path))

    def add_watch(self, path, mode):
        return self.call(Op.ADD_WATCH, Writer().string(path).int(mode).bytes())

    def who_am_i(self):
        return self.call(Op.WHO_AM_I, b"")

    def close_session(self, timeout=None):
        """Send closeSession and wait for its reply; the connection is then
        expected to be closed by the server (ZK-BEHAVIOURS 19)."""
        reply = self.call(Op.CLOSE_SESSION, b"", timeout=timeout)
        return reply

    def last_zxid(self):
        """The server's last processed zxid, as a read's reply header
        carries it (reads do not consume a zxid: ZK-BEHAVIOURS 2)."""
        return self.exists("/").zxid

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def shutdown(self):
        """Close the session if still connected, then the socket; never
        raises (used in finalizers)."""
        if not self.closed and self.session_id is not None:
            try:
                self.close_session(timeout=3.0)
            except Exception:
                pass
        self.close()


def connect(host, port, timeout_ms=30000, **kw):
    """Open a connection and do the handshake; returns the Client."""
    c = Client(host, port)
    c.connect(timeout_ms=timeout_ms, **kw)
    return c


def four_letter(host, port, cmd, timeout=5.0):
    """Send a four-letter word on a fresh connection; return everything the
    server writes until it closes the connection."""
    if isinstance(cmd, str):
        cmd = cmd.encode()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd)
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out.decode("utf-8", "replace")


def ok(reply):
    """Asserts a reply succeeded and returns it."""
    assert reply.err == Err.OK, reply
    return reply
