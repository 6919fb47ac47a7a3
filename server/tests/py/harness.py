"""Starting and stopping the servers under test.

What it is: the one place that knows how to run our `zk-server` and Apache
ZooKeeper 3.8 (Debian's package) on the same zoo.cfg, on a free loopback
port with a temp data dir, and how to decide whether a missing program is a
skip (local run) or a failure (CI=true).

What it is not: a test. Fixtures in conftest.py call it.

Invariant it keeps: every process it starts runs in its own process group
and is killed (group-wide, TERM then KILL) by `Server.stop()`, which the
fixtures always call; an atexit hook stops anything left over.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import zkraw

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# Debian's layout: the server jar's manifest carries the Class-Path of its
# dependencies, so the jar alone is the classpath.
ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_CLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"
ZK_HEADER = "/usr/include/zookeeper/zookeeper.h"
JAVA = shutil.which("java") or "/usr/bin/java"
# Jetty, which the reference's AdminServer runs on, needs the servlet API;
# Debian's zookeeper.jar manifest does not list it.
SERVLET_JAR = "/usr/share/java/servlet-api.jar"
# The Netty connection factory (the reference's TLS client port) needs
# netty-codec, and its Netty client socket netty-resolver too, which the
# manifest omits as well.
NETTY_CODEC_JAR = "/usr/share/java/netty-codec.jar"
NETTY_RESOLVER_JAR = "/usr/share/java/netty-resolver.jar"

OURS = "ours"
REFERENCE = "reference"
ALL_TARGETS = (OURS, REFERENCE)


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def targets():
    """Servers the parametrised tests run against (ZK_TARGETS, default both)."""
    raw = os.environ.get("ZK_TARGETS", "ours,reference")
    names = [t.strip() for t in raw.split(",") if t.strip()]
    for n in names:
        if n not in ALL_TARGETS:
            raise ValueError("ZK_TARGETS: unknown target %r (use ours,reference)" % n)
    return names


# Our storage backends (zoo.cfg `storage.backend`); the reference has one.
ALL_BACKENDS = ("native", "rocksdb")


def storage_backends():
    """Our backends the durability tests run on (ZK_STORAGE_BACKENDS,
    default both)."""
    raw = os.environ.get("ZK_STORAGE_BACKENDS", ",".join(ALL_BACKENDS))
    names = [b.strip() for b in raw.split(",") if b.strip()]
    for n in names:
        if n not in ALL_BACKENDS:
            raise ValueError("ZK_STORAGE_BACKENDS: unknown backend %r (use %s)" % (
                n, ",".join(ALL_BACKENDS)))
    return names


def durable_targets():
    """pytest params for tests about durability: ours once per storage
    backend, the reference once. Each param is (kind, backend or None)."""
    out = []
    for kind in targets():
        if kind == OURS:
            out += [pytest.param((OURS, b), id="%s-%s" % (OURS, b)) for b in storage_backends()]
        else:
            out.append(pytest.param((kind, None), id=kind))
    return out


def ours_bin():
    return os.environ.get("ZK_SERVER_BIN") or os.path.join(REPO_ROOT, "target", "debug", "zk-server")


def missing(what):
    """A needed program is absent: fail in CI, skip loudly elsewhere."""
    msg = "MISSING: %s" % what
    if in_ci():
        pytest.fail(msg + " (CI=true: nothing may be skipped)", pytrace=False)
    banner = "\n" + "!" * 72 + "\n!! SKIPPING: " + msg + "\n" + "!" * 72 + "\n"
    print(banner)
    pytest.skip(msg)


def require(kind):
    """Skip/fail unless the server program for `kind` is available."""
    if kind == OURS:
        b = ours_bin()
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            missing("zk-server binary at %s (build with `cargo build -p server` "
                    "or set ZK_SERVER_BIN)" % b)
    elif kind == REFERENCE:
        if not os.path.isfile(ZK_JAR):
            missing("Apache ZooKeeper jar %s (apt-get install zookeeper)" % ZK_JAR)
        if not os.path.exists(JAVA):
            missing("java (apt-get install default-jre-headless)")
    else:
        raise ValueError(kind)


def require_file(path, package):
    if not os.path.exists(path):
        missing("%s (apt-get install %s)" % (path, package))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_live = set()


@atexit.register
def _stop_leftovers():
    for server in list(_live):
        server.stop()


class Server:
    """One running server. `kind` is OURS or REFERENCE."""

    def __init__(self, kind, tick_time=2000, max_client_cnxns=60,
                 whitelist="*", extra=None, min_session_timeout=None,
                 max_session_timeout=None, jvm_flags=(), backend=None, admin=False):
        self.kind = kind
        # The AdminServer, on a free loopback port (`admin_port`) when asked
        # for; off otherwise, so servers never fight over its port 8080.
        self.admin = admin
        self.admin_port = None
        # Our storage backend, written as `storage.backend=` for ours (None:
        # the key is left out, so the default, native); the reference has
        # no such key and ignores this.
        self.backend = backend
        # Java system properties (-Dname=value): on the java command line for
        # the reference, in SERVER_JVMFLAGS for ours (as zkServer.sh users
        # pass them).
        self.jvm_flags = list(jvm_flags)
        self.host = "127.0.0.1"
        self.port = None
        self.tick_time = tick_time
        self.max_client_cnxns = max_client_cnxns
        self.whitelist = whitelist
        self.extra = dict(extra or {})
        self.min_session_timeout = min_session_timeout
        self.max_session_timeout = max_session_timeout
        self.dir = None
        self.proc = None
        self.log_path = None
        self._log = None

    @property
    def name(self):
        if self.kind == OURS and self.backend:
            return "%s-%s" % (self.kind, self.backend)
        return self.kind

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def __repr__(self):
        return "<%s server on %s>" % (self.kind, self.addr if self.port else "-")

    def write_config(self):
        lines = [
            "tickTime=%d" % self.tick_time,
            "dataDir=%s" % os.path.join(self.dir, "data"),
            "clientPort=%d" % self.port,
            "clientPortAddress=127.0.0.1",
            "4lw.commands.whitelist=%s" % self.whitelist,
            "extendedTypesEnabled=true",
            "maxClientCnxns=%d" % self.max_client_cnxns,
        ]
        if self.admin:
            lines += ["admin.enableServer=true", "admin.serverAddress=127.0.0.1",
                      "admin.serverPort=%d" % self.admin_port]
        else:
            lines.append("admin.enableServer=false")
        if self.min_session_timeout is not None:
            lines.append("minSessionTimeout=%d" % self.min_session_timeout)
        if self.max_session_timeout is not None:
            lines.append("maxSessionTimeout=%d" % self.max_session_timeout)
        if self.kind == OURS and self.backend:
            lines.append("storage.backend=%s" % self.backend)
        for k, v in self.extra.items():
            lines.append("%s=%s" % (k, v))
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        return cfg

    def command(self, cfg):
        if self.kind == OURS:
            return [ours_bin(), cfg]
        return [
            JAVA,
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=%s" % ("true" if self.admin else "false"),
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.log.dir=%s" % self.dir,
            *self.jvm_flags,
            "-cp", ZK_JAR + (":" + SERVLET_JAR if self.admin else "")
            + (":" + NETTY_CODEC_JAR if os.path.exists(NETTY_CODEC_JAR) else ""),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            cfg,
        ]

    def start(self, timeout=60.0, from_data=None):
        """Start on a fresh temp dir. `from_data` (a directory) is copied in
        as the data dir first: a server started on a copy of another's files,
        which crash tests damage without touching the original."""
        require(self.kind)
        if self.admin and self.kind == REFERENCE:
            require_file(SERVLET_JAR, "libservlet-api-java")
        self.dir = tempfile.mkdtemp(prefix="zktest-%s-" % self.kind)
        if from_data is None:
            os.makedirs(os.path.join(self.dir, "data"))
        else:
            shutil.copytree(from_data, os.path.join(self.dir, "data"))
        last_error = None
        # A free port can be taken between our probe and the server's bind:
        # try a few ports before giving up.
        for _attempt in range(3):
            self.port = free_port()
            if self.admin:
                self.admin_port = free_port()
            cfg = self.write_config()
            self.log_path = os.path.join(self.dir, "server.log")
            self._log = open(self.log_path, "ab")
            env = dict(os.environ)
            env.setdefault("RUST_BACKTRACE", "1")
            if self.kind == OURS and self.jvm_flags:
                env["SERVER_JVMFLAGS"] = " ".join(self.jvm_flags)
            self.proc = subprocess.Popen(
                self.command(cfg), stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, cwd=self.dir, env=env, start_new_session=True,
            )
            _live.add(self)
            try:
                self.wait_ready(timeout)
                return self
            except Exception as e:  # not ready: stop and retry on a new port
                last_error = e
                self._kill()
        raise RuntimeError("%s server did not start: %s\n--- log tail ---\n%s"
                           % (self.kind, last_error, self.log_tail()))

    def wait_ready(self, timeout):
        """Ready = a full handshake succeeds (a bound port alone is not
        enough: Apache ZooKeeper binds before its tree is loaded)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("exited with status %s" % self.proc.returncode)
            try:
                c = zkraw.Client(self.host, self.port, timeout=2.0)
                try:
                    c.connect(timeout_ms=6000)
                    c.close_session(timeout=2.0)
                finally:
                    c.close()
                return
            except Exception as e:
                last = e
                time.sleep(0.1)
        raise TimeoutError("not ready after %.0fs: %r" % (timeout, last))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # The group may still hold children even when the leader exited.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log:
            self._log.close()
            self._log = None
        _live.discard(self)

    def crash_and_restart(self, timeout=60.0):
        """kill -9 the server, then start it again on the same port, config
        and data directory (what a crash and a restart by a supervisor do)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._kill()
        cfg = os.path.join(self.dir, "zoo.cfg")
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        if self.kind == OURS and self.jvm_flags:
            env["SERVER_JVMFLAGS"] = " ".join(self.jvm_flags)
        self.proc = subprocess.Popen(
            self.command(cfg), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=self.dir, env=env, start_new_session=True,
        )
        _live.add(self)
        self.wait_ready(timeout)
        return self

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    def _env(self):
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        if self.kind == OURS and self.jvm_flags:
            env["SERVER_JVMFLAGS"] = " ".join(self.jvm_flags)
        return env

    def kill9(self):
        """kill -9 the server (its whole process group) and reap it, leaving
        the data directory as the crash left it."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._kill()

    def restart(self, timeout=60.0):
        """Start again on the same port, config and data directory after
        `kill9()` (or a refused start); returns once a handshake succeeds."""
        if self.alive():
            raise RuntimeError("restart: %r is still running" % self)
        cfg = os.path.join(self.dir, "zoo.cfg")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(cfg), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=self.dir, env=self._env(), start_new_session=True,
        )
        _live.add(self)
        try:
            self.wait_ready(timeout)
        except Exception as e:
            self._kill()
            raise RuntimeError("%s server did not restart: %s\n--- log tail ---\n%s"
                               % (self.kind, e, self.log_tail()))
        return self

    def restart_expecting_failure(self, timeout=30.0):
        """Start the program on the same config and data directory (the
        server must not be running), expecting it to refuse to start.
        Returns (exit status, everything it printed). A program still
        running after `timeout` is killed and the call fails: it started
        when it should not have."""
        if self.alive():
            raise RuntimeError("restart_expecting_failure: %r is still running" % self)
        cfg = os.path.join(self.dir, "zoo.cfg")
        proc = subprocess.Popen(
            self.command(cfg), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=self.dir, env=self._env(), start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
            raise AssertionError("%s server kept running (expected it to refuse to start); "
                                 "output:\n%s" % (self.kind, out.decode("utf-8", "replace")))
        text = out.decode("utf-8", "replace")
        with open(self.log_path, "ab") as f:
            f.write(out)
        return proc.returncode, text

    def stop(self):
        self._kill()
        self.proc = None
        if self.dir and not os.environ.get("ZK_KEEP_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except Exception:
            return "(no log)"

    # -- conveniences

    def raw(self, timeout_ms=30000, **kw):
        """A raw client with its handshake done."""
        return zkraw.connect(self.host, self.port, timeout_ms=timeout_ms, **kw)

    def raw_unconnected(self, timeout=10.0):
        return zkraw.Client(self.host, self.port, timeout=timeout)

    def four(self, cmd, timeout=5.0):
        return zkraw.four_letter(self.host, self.port, cmd, timeout)

    def assert_serving(self):
        """A fresh session can still create, read and delete: proof that
        the server kept serving other clients."""
        assert self.alive(), "%s server process died\n%s" % (self.kind, self.log_tail())
        c = self.raw(timeout_ms=10000)
        try:
            path = "/serving-%d-%d" % (os.getpid(), time.monotonic_ns())
            r = c.create(path, b"ok")
            assert r.err == zkraw.Err.OK, r
            assert c.get_data(path).data == b"ok"
            assert c.delete(path).err == zkraw.Err.OK
        finally:
            c.shutdown()


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    """Poll `pred` until it is truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Interactive:
    """A client program (zkCli, cli_mt) fed one command at a time on stdin,
    its output (stdout and stderr) collected line by line by a reader
    thread. `close()` sends `quit` and kills the process group if needed."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.buf = []
        self.skipped = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw_line in self.proc.stdout:
            with self.lock:
                self.buf.append(raw_line.decode("utf-8", "replace").rstrip("\n"))

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def expect(self, want, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for i, line in enumerate(self.buf):
                    if (want.match(line) if hasattr(want, "match") else line == want):
                        # The lines passed over, for tests that check order.
                        self.skipped = self.buf[:i]
                        del self.buf[: i + 1]
                        return line
            time.sleep(0.02)
        with self.lock:
            seen = list(self.buf)
        raise AssertionError("%s did not print %r; pending output:\n%s" % (
            os.path.basename(self.proc.args[0]),
            getattr(want, "pattern", want), "\n".join(seen)))

    def pending(self):
        with self.lock:
            return list(self.buf)

    def close(self):
        try:
            self.send("quit")
            self.proc.wait(15)
        except Exception:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
