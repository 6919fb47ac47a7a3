"""Makes the Apache ZooKeeper 3.8 data directories in this folder, which
tools/tests/migrate.rs imports: Debian's jar run by server/tests/py/harness.py
with snapCount=20, once per snapshot compression (none, gz, snappy), under one
small workload, then killed with -9. Log files are cut after their last
entry plus 64 bytes of their zeroed preallocation, so they stay small.

Run from server/tests/py: `python ../../../tools/tests/data/apache-3.8/make.py OUT_DIR`,
then move OUT_DIR/none to plain/ (gz/ and snappy/ keep their names).

The workload: /a with data, two sequential children, an ephemeral of a live
session; a digest-ACL node (/secret, user bob:pw); a container with a child;
a TTL node (10 minutes); /n00../n29; a multi that applies (setData /a,
delete /n00) and one that fails (create /never, check /a version 42); setACL
on /n01; three more setData of /a; the workload's own session closed.
"""
import os, sys, shutil, struct
sys.path.insert(0, ".")
import harness, zkraw
from zkraw import Mode, ACL, Perm
out = sys.argv[1]
for method in ("none", "gz", "snappy"):
    flags = [] if method == "none" else ["-Dzookeeper.snapshot.compression.method=%s" % method]
    s = harness.Server(harness.REFERENCE, extra={"snapCount": "20"}, jvm_flags=flags, max_session_timeout=60000)
    s.start()
    live = s.raw(timeout_ms=30000)
    c = s.raw()
    c.create("/a", b"alpha")
    c.create("/a/seq-", b"", flags=Mode.PERSISTENT_SEQUENTIAL)
    c.create("/a/seq-", b"", flags=Mode.PERSISTENT_SEQUENTIAL)
    live.create("/a/eph", b"e", flags=Mode.EPHEMERAL)
    c.auth("digest", "bob:pw")
    c.create("/secret", b"s", acl=zkraw.CREATOR_ALL_ACL)
    c.create_container("/box", b"")
    c.create("/box/in", b"")
    c.create_ttl("/ttl", b"t", ttl=600000)
    for i in range(30):
        c.create("/n%02d" % i, b"%d" % i)
    c.multi([zkraw.op_set_data("/a", b"beta"), zkraw.op_delete("/n00")])
    c.multi([zkraw.op_create("/never", b""), zkraw.op_check("/a", 42)])
    c.set_acl("/n01", [ACL(Perm.READ, "world", "anyone")])
    for i in range(3):
        c.set_data("/a", b"tail%d" % i)
    c.close_session()
    s.kill9()
    d = os.path.join(out, method, "version-2")
    os.makedirs(d)
    src = os.path.join(s.data_dir, "version-2")
    for f in sorted(os.listdir(src)):
        b = open(os.path.join(src, f), "rb").read()
        if f.startswith("log."):
            # keep the used part and a little of the zeroed preallocation
            p = 16
            while p + 12 <= len(b):
                crc, n = struct.unpack(">qi", b[p:p+12])
                if n <= 0: break
                p += 12 + n + 1
            b = b[:p + 64]
        open(os.path.join(d, f), "wb").write(b)
    print(method, sorted(os.listdir(d)), "session", hex(live.session_id))
    live.close()
    s.stop()
