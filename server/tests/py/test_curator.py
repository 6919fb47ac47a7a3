"""Apache Curator 5.4's recipes (Debian's libcurator-*-java) against a
3-member ensemble, one Curator client per member.

What it is: `curator/EnsembleRecipes.java`, compiled here with javac against
Debian's jars and run with the members' addresses: a contended
InterProcessMutex (a counter read and written under the lock from clients on
different members must count every turn), a LeaderLatch of 3 participants
(exactly one leader; another takes over when it closes), a
SimpleDistributedQueue and a DistributedQueue (FIFO across members), and
CuratorCache / PathChildrenCache events for writes made through another
member. Exit status 0 means every check held. `curator/EnsembleReconfig.java`
drives Curator's reconfig API (getConfig, reconfig leaving/joining with
fromConfig) against an ensemble started with reconfigEnabled.

What it is not: a test of Curator.

Invariant it keeps: the Java program is bounded by a timeout (and its own
watchdog) and killed if it overruns; the ensemble is always stopped.
"""

import os
import shutil
import subprocess

import pytest

import harness
from ensemble import Ensemble, ensemble_targets

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "curator", "EnsembleRecipes.java")
RECONFIG_SOURCE = os.path.join(HERE, "curator", "EnsembleReconfig.java")
# The digest of super:test, as kazoo's harness configures it.
SUPER_DIGEST = "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU="
JAVAC = shutil.which("javac") or "/usr/bin/javac"
JARS = ["/usr/share/java/%s.jar" % j for j in (
    "curator-recipes", "curator-framework", "curator-client", "zookeeper")]
# Quiet logging: slf4j without a binding would print a warning per run.
RUN_JARS = JARS + ["/usr/share/java/slf4j-nop.jar"]


@pytest.fixture(scope="module")
def recipes_class(tmp_path_factory):
    harness.require_file(JAVAC, "openjdk-17-jdk-headless")
    for jar in JARS:
        harness.require_file(jar, "libcurator-recipes-java libcurator-framework-java")
    out = str(tmp_path_factory.mktemp("curator-classes"))
    p = subprocess.run([JAVAC, "-nowarn", "-d", out, "-cp", ":".join(JARS), SOURCE,
                        RECONFIG_SOURCE],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert p.returncode == 0, p.stdout.decode("utf-8", "replace")
    return out


@pytest.mark.parametrize("target", [pytest.param(t, id=("%s-%s" % t) if t[1] else t[0])
                                    for t in ensemble_targets()][:1])
def test_curator_recipes_across_members(request, recipes_class, target):
    kind, backend = target
    ens = Ensemble(kind, backend=backend)
    request.addfinalizer(ens.stop)
    ens.start()
    cp = ":".join([recipes_class] + [j for j in RUN_JARS if os.path.exists(j)])
    argv = [harness.JAVA, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            "-cp", cp, "EnsembleRecipes", "/curator-%d" % os.getpid()]
    argv += [n.addr for n in ens.nodes]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=170)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate(timeout=10)
        raise AssertionError("Curator program overran:\n" + out.decode("utf-8", "replace"))
    text = out.decode("utf-8", "replace")
    print(text)
    assert p.returncode == 0, "Curator program failed (status %d):\n%s\n%s" % (
        p.returncode, text, ens.log_tails())
    for what in ("PASS lock", "PASS leader latch", "PASS queues", "PASS caches"):
        assert what in text, text


def run_java(argv, timeout=170):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate(timeout=10)
        raise AssertionError("Curator program overran:\n" + out.decode("utf-8", "replace"))
    return p.returncode, out.decode("utf-8", "replace")


@pytest.mark.parametrize("target", [pytest.param(t, id=("%s-%s" % t) if t[1] else t[0])
                                    for t in ensemble_targets()][:1])
def test_curator_reconfig_api(request, recipes_class, target):
    """Curator's getConfig and reconfig builders, as a super user and not:
    the last server leaves and joins again from the version read, a stale
    version and a plain client are refused."""
    kind, backend = target
    ens = Ensemble(kind, backend=backend, extra={"reconfigEnabled": "true"},
                   properties=[SUPER_DIGEST])
    request.addfinalizer(ens.stop)
    ens.start()
    last = ens.nodes[-1]
    line = "server.%d=%s:%d:%d:participant;%s" % (
        last.myid, last.host, last.quorum_port, last.election_port, last.addr)
    cp = ":".join([recipes_class] + [j for j in RUN_JARS if os.path.exists(j)])
    argv = [harness.JAVA, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            "-cp", cp, "EnsembleReconfig", ens.connect_string(range(len(ens) - 1)),
            str(last.myid), line]
    status, text = run_java(argv)
    print(text)
    assert status == 0, "Curator program failed (status %d):\n%s\n%s" % (
        status, text, ens.log_tails())
    for what in ("PASS no auth", "PASS bad version", "PASS reconfig"):
        assert what in text, text
