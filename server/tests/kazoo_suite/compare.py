#!/usr/bin/env python3
"""Compare two runs of kazoo's upstream suite (junit.xml from run.sh).

    compare.py [REFERENCE OURS]

With no arguments, compares results/apache-N with results/ours-N for each
cluster size N that has both. Prints the counts of each run, the tests that
pass on the reference but not on ours (with the first line of the error),
and the tests that pass on ours but not on the reference. Exits 1 when some
test passes on the reference only.
"""
import os
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))


def outcomes(path):
    """{test id: (outcome, first line of message)} from a junit XML file."""
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = "%s::%s" % (case.get("classname", ""), case.get("name", ""))
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error"}.get(child.tag, "skipped")
                text = child.get("message") or child.text or ""
                lines = [line for line in text.strip().splitlines() if line.strip()]
                message = lines[0].strip() if lines else ""
                # A test that failed and then errored in teardown: failure wins.
                if outcome != "skipped":
                    break
        previous = results.get(test_id)
        if previous is None or previous[0] in ("passed", "skipped"):
            results[test_id] = (outcome, message)
    return results


def counts(results):
    tally = {}
    for outcome, _ in results.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    return ", ".join("%d %s" % (n, name) for name, n in sorted(tally.items()))


def compare(reference_path, ours_path):
    reference = outcomes(reference_path)
    ours = outcomes(ours_path)
    print("reference %s: %s" % (reference_path, counts(reference)))
    print("ours      %s: %s" % (ours_path, counts(ours)))
    regressions = [
        t for t in sorted(reference)
        if reference[t][0] == "passed" and ours.get(t, ("missing", ""))[0] != "passed"
    ]
    print("\npass on the reference, not on ours: %d" % len(regressions))
    for t in regressions:
        outcome, message = ours.get(t, ("missing", ""))
        print("  %s [%s] %s" % (t, outcome, message[:200]))
    better = [
        t for t in sorted(ours)
        if ours[t][0] == "passed" and reference.get(t, ("missing", ""))[0] != "passed"
    ]
    print("\npass on ours, not on the reference: %d" % len(better))
    for t in better:
        outcome, message = reference.get(t, ("missing", ""))
        print("  %s [%s] %s" % (t, outcome, message[:200]))
    return len(regressions)


def main(argv):
    if len(argv) == 2:
        return 1 if compare(argv[0], argv[1]) else 0
    if argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    found = 0
    worse = 0
    for size in ("1", "3"):
        reference = os.path.join(HERE, "results", "apache-" + size, "junit.xml")
        ours = os.path.join(HERE, "results", "ours-" + size, "junit.xml")
        if os.path.exists(reference) and os.path.exists(ours):
            found += 1
            print("=== cluster size %s ===" % size)
            worse += compare(reference, ours)
            print()
    if not found:
        print("no results/apache-N and results/ours-N pair; run run.sh first", file=sys.stderr)
        return 2
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
