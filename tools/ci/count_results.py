#!/usr/bin/env python3
"""Counts test cases from JUnit XML reports (Bazel's test.xml, pytest's
--junitxml) and prints one line: `N passed, N failed`.

A test target whose XML lists no test cases (e.g. a plain C test program)
counts as one case, passed or failed by Bazel's verdict in the same XML.
Test targets that Bazel could not build or run have no XML; pass Bazel's
console output with `--bazel-log FILE` and each `//target  FAILED TO BUILD`
(or `NO STATUS`) line counts as one failed case.
Usage: count_results.py [--bazel-log FILE]... DIR_OR_FILE...
"""
import os
import re
import sys
import xml.etree.ElementTree as ET


def count_file(path):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return 0, 1
    passed = failed = 0
    cases = list(root.iter("testcase"))
    if not cases:
        suites = list(root.iter("testsuite")) or [root]
        bad = sum(int(s.get("failures", 0) or 0) + int(s.get("errors", 0) or 0)
                  for s in suites)
        return (0, 1) if bad else (1, 0)
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            continue
        else:
            passed += 1
    return passed, failed


UNBUILT = re.compile(r"^(//\S+)\s+(FAILED TO BUILD|NO STATUS)\b")


def count_unbuilt(path):
    targets = set()
    with open(path, errors="replace") as log:
        for line in log:
            match = UNBUILT.match(line)
            if match:
                targets.add(match.group(1))
    for target in sorted(targets):
        print("not built or not run: %s" % target, file=sys.stderr)
    return len(targets)


def main(args):
    passed = failed = 0
    while len(args) >= 2 and args[0] == "--bazel-log":
        failed += count_unbuilt(args[1])
        args = args[2:]
    for arg in args:
        paths = []
        if os.path.isdir(arg):
            for dirpath, _, files in os.walk(arg, followlinks=True):
                paths += [os.path.join(dirpath, f) for f in files
                          if f == "test.xml" or f.endswith(".junit.xml")]
        elif os.path.exists(arg):
            paths.append(arg)
        for path in sorted(paths):
            p, f = count_file(path)
            passed += p
            failed += f
            if f:
                print("failed: %s" % path, file=sys.stderr)
    print("%d passed, %d failed" % (passed, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
