"""Machinery for differential tests: run one scenario on two servers,
normalise what each returned, and compare.

What it is: `Side` (one server's run of a scenario: its sessions, its
observations) and `compare()` that diffs two runs readably. Normalisation
keeps everything a client can rely on and drops what legitimately differs:
times become "t" (0 stays 0), session ids become S1, S2… in order of
creation, passwords are dropped, and zxids are expressed relative to the
last zxid seen when the scenario started ("+3"), with -1 and 0 kept as
they are and older zxids shown as "old". So "a failed write consumes a
zxid" is compared too.

What it is not: the scenarios themselves (test_differential.py).

Invariant it keeps: an observation list depends only on what the server
answered, never on wall-clock time, ports, or session-id values.
"""

import difflib
import os
import pprint

import zkraw
from zkraw import Err, Op

OP_NAMES = {v: k for k, v in vars(Op).items() if not k.startswith("_")}


class Side:
    """One server's run of one scenario."""

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self.prefix = "/diff-" + name
        self.clients = []
        self.sessions = {}
        self.obs = []
        self.base = None

    # -- sessions

    def session(self, timeout_ms=30000, **kw):
        """Open a raw session; its id is named S1, S2, … in opening order.
        The first one also fixes the scenario's base zxid."""
        c = self.server.raw(timeout_ms=timeout_ms, **kw)
        self.clients.append(c)
        self.name_session(c.session_id)
        if self.base is None:
            self.base = c.last_zxid()
        return c

    def name_session(self, sid):
        if sid and sid not in self.sessions:
            self.sessions[sid] = "S%d" % (len(self.sessions) + 1)
        return self.sessions.get(sid, sid)

    def close_all(self):
        for c in self.clients:
            c.shutdown()

    # -- normalisation

    def zxid(self, z):
        if z in (-1, 0):
            return z
        if self.base is None or z < self.base:
            return "old"
        return "+%d" % (z - self.base)

    def time(self, t):
        return 0 if t == 0 else "t"

    def stat(self, st):
        if st is None:
            return None
        owner = st.ephemeralOwner
        return {
            "czxid": self.zxid(st.czxid), "mzxid": self.zxid(st.mzxid),
            "pzxid": self.zxid(st.pzxid), "ctime": self.time(st.ctime),
            "mtime": self.time(st.mtime), "version": st.version, "cversion": st.cversion,
            "aversion": st.aversion,
            "ephemeralOwner": self.sessions.get(owner, "unknown-session" if owner else 0),
            "dataLength": st.dataLength, "numChildren": st.numChildren,
        }

    def multi_result(self, r):
        out = {"op": OP_NAMES.get(r.op, r.op), "err": zkraw.err_name(r.err)}
        if r.path is not None:
            out["path"] = r.path
        if r.stat is not None:
            out["stat"] = self.stat(r.stat)
        if r.op == Op.GET_DATA:
            out["data"] = r.data
        if r.children is not None:
            out["children"] = sorted(r.children)  # ZK-BEHAVIOURS 20
        return out

    def reply(self, r):
        out = {"err": zkraw.err_name(r.err), "zxid": self.zxid(r.zxid)}
        if r.xid < 0:
            out["xid"] = r.xid
        if r.err != Err.OK or r.op is None:
            out["body_bytes"] = len(r.body)
        if r.path is not None:
            out["path"] = r.path
        if r.stat is not None:
            out["stat"] = self.stat(r.stat)
        if r.op == Op.GET_DATA and r.err == Err.OK:
            out["data"] = r.data
        if r.children is not None:
            out["children"] = sorted(r.children)
        if r.acl is not None:
            out["acl"] = [tuple(a) for a in r.acl]
        if r.results is not None:
            out["results"] = [self.multi_result(x) for x in r.results]
        if r.total is not None:
            out["total"] = r.total
        if r.ids is not None:
            out["ids"] = sorted(tuple(i) for i in r.ids)
        if r.op in (Op.ADD_WATCH, Op.SASL, Op.CHECK_WATCHES, Op.REMOVE_WATCHES, Op.DELETE,
                    Op.SET_WATCHES, Op.SET_WATCHES2, Op.AUTH, Op.PING, Op.CLOSE_SESSION):
            out["body"] = r.body
        return out

    def event(self, e):
        return {"type": e.type, "state": e.state, "path": e.path, "zxid": self.zxid(e.zxid)}

    # -- recording

    def record(self, label, value):
        self.obs.append((label, value))
        return value

    def r(self, label, reply):
        """Record a reply (normalised); returns the raw reply."""
        self.obs.append((label, self.reply(reply)))
        return reply

    def call(self, label, fn, *args, **kw):
        """Record the outcome of a call that may end in a closed
        connection instead of a reply."""
        try:
            reply = fn(*args, **kw)
        except zkraw.Closed:
            self.obs.append((label, "closed"))
            return None
        except zkraw.Timeout:
            self.obs.append((label, "no reply"))
            return None
        self.obs.append((label, self.reply(reply)))
        return reply

    def events(self, label, client, quiet=0.05, unordered=False):
        """Record the events `client` has received so far. A ping first: its
        reply comes after every event the server queued before it. With
        `unordered`, the events are sorted: for when the reference's order
        is arbitrary (say, hash order)."""
        try:
            client.ping()
        except zkraw.Closed:
            pass
        evs = []
        try:
            evs = client.drain_events(quiet)
        except zkraw.Closed:
            evs = list(client.events)
            client.events.clear()
        out = [self.event(e) for e in evs]
        if unordered:
            out.sort(key=lambda e: sorted(e.items()))
        self.obs.append((label, out))

    def wire_order(self, label, client):
        """Record the kinds (event/reply) in the order they arrived since the
        last call, then forget them."""
        kinds = [(k, getattr(x, "path", None) if k == "event" else OP_NAMES.get(x.op, x.op))
                 for k, x in client.log]
        client.log.clear()
        self.obs.append((label, kinds))

    def closed(self, label, client, timeout=3.0):
        self.obs.append((label, "closed" if client.wait_closed(timeout) else "open"))

    def tree(self, label, client, path):
        """Record a subtree: each node's data, normalised stat and ACL,
        children sorted, depth first."""
        out = []

        def walk(p):
            g = client.get_data(p)
            if g.err != Err.OK:
                out.append((p, zkraw.err_name(g.err)))
                return
            acl = client.get_acl(p)
            out.append((p, g.data, self.stat(g.stat),
                        [tuple(a) for a in acl.acl] if acl.acl is not None else
                        zkraw.err_name(acl.err)))
            kids = client.get_children(p)
            for k in sorted(kids.children or []):
                walk(p.rstrip("/") + "/" + k)

        walk(path)
        self.obs.append((label, out))


def render(obs):
    lines = []
    for i, (label, value) in enumerate(obs):
        text = pprint.pformat(value, width=100, sort_dicts=True)
        for j, line in enumerate(text.splitlines()):
            lines.append(("%3d %-34s " % (i, label) if j == 0 else " " * 39) + line)
    return lines


def compare(name, left, right, known=None):
    """Assert that two sides observed the same things. `known` maps an
    observation label to the written reason the two may differ there; such
    entries are compared for presence only."""
    known = known or {}
    if os.environ.get("ZK_DIFF_DUMP"):
        print("\n".join(["== %s on %s" % (name, right.server.kind)] + render(right.obs)))
    a = [(l, "<differs: %s>" % known[l] if l in known else v) for l, v in left.obs]
    b = [(l, "<differs: %s>" % known[l] if l in known else v) for l, v in right.obs]
    if a == b:
        return
    diff = difflib.unified_diff(render(a), render(b), fromfile="%s on %s" % (name, left.server.kind),
                                tofile="%s on %s" % (name, right.server.kind), lineterm="", n=4)
    raise AssertionError("scenario %r differs (left=%s, right=%s):\n%s" % (
        name, left.server.kind, right.server.kind, "\n".join(diff)))
