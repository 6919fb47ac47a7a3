#!/usr/bin/env python3
"""Fail a run of kazoo's upstream suite on any unexpected failure.

    check.py JUNIT_XML [EXPECTED_FAILURES ...]

A test that failed or errored must match a line of expected_failures.txt
(or of the files given; a standalone run adds expected_failures.standalone.txt)
(classname::name as junit.xml names it, shell-style wildcards allowed): those are features not built yet,
each naming its issue. Prints the counts, the expected failures seen, and
every unexpected one with its first error line; exits 1 if there is any.
"""
import fnmatch
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import outcomes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def patterns(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def expected(test_id, allowed):
    return any(fnmatch.fnmatchcase(test_id, p) for p in allowed)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    files = sys.argv[2:] or [os.path.join(HERE, "expected_failures.txt")]
    allowed = [p for path in files for p in patterns(path)]
    results = outcomes(sys.argv[1])
    counts = {}
    for outcome, _ in results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    print("kazoo suite:", ", ".join("%d %s" % (n, o) for o, n in sorted(counts.items())))
    bad = []
    for test_id, (outcome, message) in sorted(results.items()):
        if outcome not in ("failed", "error"):
            continue
        if expected(test_id, allowed):
            print("  expected failure: %s" % test_id)
        else:
            bad.append((test_id, message))
    for test_id, message in bad:
        print("UNEXPECTED %s: %s" % (test_id, message))
    if not results:
        print("no test results", file=sys.stderr)
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
