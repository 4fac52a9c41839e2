#!/usr/bin/env python3
"""Counts test cases from JUnit XML reports (Bazel's test.xml, pytest's
--junitxml) and prints one line: `N passed, N failed`.

A test target whose XML lists no test cases (e.g. a plain C test program)
counts as one case, passed or failed by Bazel's verdict in the same XML.
Usage: count_results.py DIR_OR_FILE...
"""
import os
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


def main(args):
    passed = failed = 0
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
