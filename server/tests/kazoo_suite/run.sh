#!/usr/bin/env bash
# Runs kazoo's own upstream test suite (kazoo/tests, shipped in the kazoo
# package) against one target, as kazoo's harness starts it:
#
#   server/tests/kazoo_suite/run.sh ours|apache 1|3 [extra pytest args]
#
# ours    target/release/zk-server (or $ZK_SERVER_BIN), launched through the
#         `java` shim in shim/ so kazoo's harness is used unchanged;
# apache  Debian's ZooKeeper 3.8 (/usr/share/java/zookeeper.jar).
# 1|3     ZOOKEEPER_CLUSTER_SIZE: standalone or a 3-node ensemble.
#
# Results go to results/<target>-<size>/ (or $KAZOO_SUITE_OUT): junit.xml,
# pytest.log, summary.txt and server-logs/. compare.py then lists the tests that pass on Apache but
# not on ours. Environment knobs: KAZOO_SUITE_TEST_TIMEOUT (seconds per test,
# default 120), KAZOO_SUITE_RUN_TIMEOUT (seconds for the whole run, default
# 2400), KAZOO_SUITE_PORT_OFFSET (first port; default per target and size).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"

usage() {
    echo "usage: $0 ours|apache 1|3 [pytest args...]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
TARGET="$1"
SIZE="$2"
shift 2
case "$TARGET" in ours | apache) ;; *) usage ;; esac
case "$SIZE" in 1 | 3) ;; *) usage ;; esac

# --- venv with kazoo and what its tests import ------------------------------
VENV="$HERE/.venv"
REQS="$HERE/requirements.txt"
STAMP="$VENV/.requirements.installed"
if ! [ -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || /usr/bin/python3 -m venv "$VENV"
fi
if ! [ -f "$STAMP" ] || ! cmp -s "$REQS" "$STAMP"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    cp "$REQS" "$STAMP"
fi
TESTS_DIR="$("$VENV/bin/python" -c 'import os, kazoo.tests; print(os.path.dirname(kazoo.tests.__file__))')"

# --- target -----------------------------------------------------------------
if [ "$TARGET" = ours ]; then
    ZK_SERVER_BIN="${ZK_SERVER_BIN:-$ROOT/target/release/zk-server}"
    if ! [ -x "$ZK_SERVER_BIN" ]; then
        echo "no $ZK_SERVER_BIN: build it with cargo build --release -p server --bin zk-server" >&2
        exit 2
    fi
    export KAZOO_SUITE_ZK_SERVER="$ZK_SERVER_BIN"
else
    if ! [ -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
        echo "needs Debian's zookeeper and a java (apt-get install zookeeper default-jre-headless)" >&2
        exit 2
    fi
fi
case "$TARGET-$SIZE" in
    ours-1) default_offset=21000 ;;
    apache-1) default_offset=22000 ;;
    ours-3) default_offset=23000 ;;
    apache-3) default_offset=24000 ;;
esac

OUT="${KAZOO_SUITE_OUT:-$HERE/results/$TARGET-$SIZE}"
rm -rf "$OUT/server-logs" "$OUT/junit.xml" "$OUT/pytest.log" "$OUT/summary.txt" "$OUT/server.pids"
mkdir -p "$OUT/server-logs"
PID_FILE="$OUT/server.pids"
: >"$PID_FILE"

export KAZOO_SUITE_TARGET="$TARGET"
export KAZOO_SUITE_LOG_DIR="$OUT/server-logs"
export KAZOO_SUITE_PID_FILE="$PID_FILE"
export PATH="$HERE/shim:$PATH"
# kazoo's harness: the shim ignores the classpath, but the harness needs one
# of these set; 3.8.0 is the version both servers claim, and turns on the
# harness's 3.5+ settings (4lw whitelist, reconfigEnabled, superDigest).
export ZOOKEEPER_CLASSPATH="/usr/share/java/zookeeper.jar"
export ZOOKEEPER_VERSION="3.8.0"
export ZOOKEEPER_CLUSTER_SIZE="$SIZE"
export ZOOKEEPER_PORT_OFFSET="${KAZOO_SUITE_PORT_OFFSET:-$default_offset}"
unset ZOOKEEPER_PATH ZOOKEEPER_OBSERVER_START_ID ZOOKEEPER_JAAS_AUTH ZOOKEEPER_LOCAL_SESSION_RO
# kazoo's tests change behaviour under CI (test_build); keep runs comparable.
unset CI

stop_leftovers() {
    local pid
    while read -r pid; do
        [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || continue
        # Only a process that is still one of this run's servers (the pid may
        # have been reused since).
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE 'kazoo-suite-server|QuorumPeerMain'; then
            kill -TERM "$pid" 2>/dev/null || true
            sleep 0.5
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done <"$PID_FILE"
}
trap stop_leftovers EXIT

echo "kazoo suite: target=$TARGET size=$SIZE tests=$TESTS_DIR ports from $ZOOKEEPER_PORT_OFFSET"
start=$(date +%s)
set +e
(
    cd "$OUT"
    timeout -k 30 "${KAZOO_SUITE_RUN_TIMEOUT:-2400}" \
        "$VENV/bin/python" -m pytest "$TESTS_DIR" \
        --rootdir "$OUT" -p no:cacheprovider \
        --timeout "${KAZOO_SUITE_TEST_TIMEOUT:-120}" \
        --reruns "${KAZOO_SUITE_RERUNS:-2}" \
        -o junit_logging=all -o junit_log_passing_tests=false \
        --junitxml "$OUT/junit.xml" -rfEs -q "$@"
) 2>&1 | tee "$OUT/pytest.log"
rc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))

{
    echo "target=$TARGET size=$SIZE pytest_exit=$rc seconds=$elapsed"
    grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error).* in [0-9.]+s' "$OUT/pytest.log" | tail -n 1 ||
        echo "(no pytest summary line: the run was stopped or crashed)"
} | tee "$OUT/summary.txt"
exit "$rc"
