"""Replicated ensembles of real server processes on loopback.

What it is: `Ensemble`, N members of our `zk-server` (either storage
backend) or of Apache ZooKeeper 3.8 (Debian's jar, `QuorumPeerMain`), each
with its own client, quorum and election port (free loopback ports), temp
data dir and `myid`, voters and observers (`:observer` in every `server.N`
line and `peerType=observer` in the observer's own zoo.cfg); and the faults
the ensemble tests inflict on them: kill -9, SIGSTOP/SIGCONT, graceful stop
and restart on the same ports and data. `Node` is one member.

What it is not: a test; it asserts nothing about the protocol. Tests and
benchmarks use it; conftest-style finalizers call `Ensemble.stop()`.

Invariant it keeps: every process runs in a process group of its own and is
always stopped (SIGCONT first, in case it was paused, then TERM, then KILL,
group-wide) by `Ensemble.stop()`; an atexit hook stops anything left over.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import harness
import zkraw

OURS = harness.OURS
REFERENCE = harness.REFERENCE

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
SERVING_MODES = ("leader", "follower", "observer")

_live = set()


@atexit.register
def _stop_leftovers():
    for node in list(_live):
        node.stop_process()


def ensemble_targets():
    """pytest ids and (kind, backend) params for the ensemble tests:
    ours on each backend of `harness.storage_backends()`, and the reference
    when ZK_ENSEMBLE_TARGETS names it (default `ours`: three JVMs per test
    are slow on a small machine)."""
    raw = os.environ.get("ZK_ENSEMBLE_TARGETS", OURS)
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    out = []
    for kind in kinds:
        if kind == OURS:
            out += [(OURS, b) for b in harness.storage_backends()]
        elif kind == REFERENCE:
            out.append((REFERENCE, None))
        else:
            raise ValueError("ZK_ENSEMBLE_TARGETS: unknown target %r (use ours,reference)" % kind)
    return out


def ensemble_params(one_per_kind=False):
    """`ensemble_targets()` as pytest params. With `one_per_kind`, only the
    first backend of each kind: the fault tests run on one target per kind
    (ours-native by default) to keep the suite short, the steady-state tests
    on every backend."""
    params = []
    for target in ensemble_targets():
        if one_per_kind and any(p.values[0][0] == target[0] for p in params):
            continue
        params.append(pytest.param(target, id=("%s-%s" % target) if target[1] else target[0]))
    return params


def _free_ports(n):
    """n distinct free loopback ports (all probed at once, so no two are the
    same; another program may still take one before the server binds)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Node:
    """One ensemble member: its id (myid), role, ports, directory, process."""

    def __init__(self, ensemble, myid, observer, client_port, quorum_port, election_port):
        self.ensemble = ensemble
        self.myid = myid
        self.observer = observer
        self.host = "127.0.0.1"
        self.port = client_port
        self.quorum_port = quorum_port
        self.election_port = election_port
        self.dir = None
        self.proc = None
        self.log_path = None
        self._log = None
        self.paused = False

    @property
    def kind(self):
        return self.ensemble.kind

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    def __repr__(self):
        return "<node %d %s%s on %s>" % (self.myid, self.kind,
                                         " observer" if self.observer else "", self.addr)

    def server_line(self):
        line = "server.%d=%s:%d:%d" % (self.myid, self.host, self.quorum_port, self.election_port)
        if self.observer:
            line += ":observer"
        return line

    def write_config(self):
        e = self.ensemble
        lines = [
            "tickTime=%d" % e.tick_time,
            "initLimit=%d" % e.init_limit,
            "syncLimit=%d" % e.sync_limit,
            "dataDir=%s" % self.data_dir,
            "clientPort=%d" % self.port,
            "clientPortAddress=127.0.0.1",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            "extendedTypesEnabled=true",
            "maxClientCnxns=0",
        ]
        if self.kind == OURS and e.backend:
            lines.append("storage.backend=%s" % e.backend)
        if self.observer:
            lines.append("peerType=observer")
        for k, v in e.extra.items():
            lines.append("%s=%s" % (k, v))
        lines += [n.server_line() for n in e.nodes]
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        return cfg

    def command(self, cfg):
        if self.kind == OURS:
            return [harness.ours_bin(), cfg]
        return [
            harness.JAVA,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.log.dir=%s" % self.dir,
            *self.ensemble.properties,
            "-cp", harness.ZK_JAR,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            cfg,
        ]

    def prepare(self):
        self.dir = tempfile.mkdtemp(prefix="zkens-%s-%d-" % (self.kind, self.myid))
        os.makedirs(self.data_dir)
        with open(os.path.join(self.data_dir, "myid"), "w") as f:
            f.write("%d\n" % self.myid)
        self.log_path = os.path.join(self.dir, "server.log")
        self.write_config()

    def spawn(self):
        """Start the process on this node's config and data (not waiting)."""
        if self.alive():
            raise RuntimeError("%r is already running" % self)
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        if self.kind == OURS and self.ensemble.properties:
            env["SERVER_JVMFLAGS"] = " ".join(self.ensemble.properties)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(os.path.join(self.dir, "zoo.cfg")), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir, env=env,
            start_new_session=True,
        )
        self.paused = False
        _live.add(self)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill9(self):
        """kill -9 (the whole group) and reap; the data dir stays as the
        crash left it."""
        if self.proc is not None:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
        self._reap()

    def terminate(self, timeout=15.0):
        """A graceful stop (SIGTERM, SIGKILL after `timeout`)."""
        self.stop_process(term_wait=timeout)

    def sigstop(self):
        self._signal(signal.SIGSTOP)
        self.paused = True

    def sigcont(self):
        self._signal(signal.SIGCONT)
        self.paused = False

    def stop_process(self, term_wait=5.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # A paused process handles TERM only once continued.
            self._signal(signal.SIGCONT)
            for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)):
                self._signal(sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._reap()

    def _reap(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log:
            self._log.close()
            self._log = None
        self.paused = False
        _live.discard(self)

    # -- looking at it

    def four(self, cmd, timeout=3.0):
        return zkraw.four_letter(self.host, self.port, cmd, timeout)

    def mode(self):
        """`Mode:` from srvr ('leader', 'follower', 'observer'), 'not serving'
        when it says so, None when it does not answer."""
        if not self.alive() or self.paused:
            return None
        try:
            text = self.four("srvr", timeout=2.0)
        except OSError:
            return None
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        m = re.search(r"^Mode: (\S+)", text, re.M)
        if m:
            return m.group(1)
        if NOT_SERVING in text:
            return "not serving"
        return None

    def mntr(self):
        text = self.four("mntr")
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        out = {}
        for line in text.splitlines():
            if "\t" in line:
                k, v = line.split("\t", 1)
                out[k] = v
        return out

    def handshake_ok(self):
        try:
            c = zkraw.Client(self.host, self.port, timeout=2.0)
        except OSError:
            return False
        try:
            c.connect(timeout_ms=6000)
            c.close_session(timeout=2.0)
            return True
        except Exception:
            return False
        finally:
            c.close()

    def serving(self):
        return self.mode() in SERVING_MODES and self.handshake_ok()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        return self.log_text().encode("utf-8", "replace")[offset:].decode("utf-8", "replace")

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])


class Ensemble:
    """`voters` participants and `observers` observers of one kind. Nodes
    are `nodes[0..]`, myid = index + 1, observers last."""

    def __init__(self, kind=OURS, voters=3, observers=0, backend=None, tick_time=1000,
                 init_limit=10, sync_limit=5, extra=None, properties=None):
        self.kind = kind
        # Java system properties ("-Dname=value" words): the reference's
        # JVM gets them on its command line, ours in SERVER_JVMFLAGS, as
        # zkServer.sh would pass them.
        self.properties = list(properties or [])
        self.backend = backend if kind == OURS else None
        self.tick_time = tick_time
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.extra = dict(extra or {})
        total = voters + observers
        ports = _free_ports(3 * total)
        self.nodes = [
            Node(self, i + 1, i >= voters, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2])
            for i in range(total)
        ]

    @property
    def name(self):
        return "%s-%s" % (self.kind, self.backend) if self.backend else self.kind

    def __len__(self):
        return len(self.nodes)

    def __getitem__(self, i):
        return self.nodes[i]

    def __repr__(self):
        return "<ensemble %s of %d>" % (self.name, len(self.nodes))

    # -- lifecycle

    def start(self, timeout=60.0):
        harness.require(self.kind)
        for n in self.nodes:
            n.prepare()
        for n in self.nodes:
            n.spawn()
        self.wait_serving(timeout=timeout)
        return self

    def stop(self):
        for n in self.nodes:
            n.stop_process()
        if not os.environ.get("ZK_KEEP_DIRS"):
            for n in self.nodes:
                if n.dir:
                    shutil.rmtree(n.dir, ignore_errors=True)

    def kill9(self, i):
        self.nodes[i].kill9()

    def sigstop(self, i):
        self.nodes[i].sigstop()

    def sigcont(self, i):
        self.nodes[i].sigcont()

    def terminate(self, i):
        self.nodes[i].terminate()

    def restart(self, i, wait=True, timeout=60.0):
        """Start node i again (same ports, config, data) after kill9 or
        terminate; with `wait`, until it serves."""
        n = self.nodes[i]
        n.stop_process()
        n.spawn()
        if wait:
            self.wait_serving([i], timeout=timeout)
        return n

    # -- looking at it

    def modes(self):
        return [n.mode() for n in self.nodes]

    def leader(self):
        """Index of the one node whose srvr says leader, else None."""
        leaders = [i for i, m in enumerate(self.modes()) if m == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def wait_leader(self, timeout=30.0, exclude=()):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.leader()
            if i is not None and i not in exclude:
                return i
            time.sleep(0.05)
        raise AssertionError("no leader among %r after %.0fs: modes %r\n%s" % (
            self, timeout, self.modes(), self.log_tails()))

    def followers(self):
        return [i for i, m in enumerate(self.modes()) if m == "follower"]

    def wait_serving(self, indices=None, timeout=60.0):
        """Wait until each node in `indices` (default all that run) says
        leader/follower/observer and takes a session."""
        if indices is None:
            indices = [i for i, n in enumerate(self.nodes) if n.alive()]
        deadline = time.monotonic() + timeout
        pending = list(indices)
        while pending:
            for i in list(pending):
                n = self.nodes[i]
                if not n.alive():
                    raise AssertionError("%r exited with %s\n%s" % (
                        n, n.proc.returncode if n.proc else None, n.log_tail()))
                if n.serving():
                    pending.remove(i)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError("%r: nodes %r not serving after %.0fs: modes %r\n%s" % (
                    self, pending, timeout, self.modes(), self.log_tails()))
            time.sleep(0.1)

    def connect_string(self, indices=None):
        if indices is None:
            indices = range(len(self.nodes))
        return ",".join(self.nodes[i].addr for i in indices)

    def log_tails(self, n=15):
        return "\n".join("--- node %d (%s) ---\n%s" % (x.myid, x.log_path, x.log_tail(n))
                         for x in self.nodes)
