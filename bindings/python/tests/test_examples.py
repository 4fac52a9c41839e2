"""The examples run and print what they should (so they cannot rot)."""

import os
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")
PACKAGE_ROOT = os.path.join(os.path.dirname(__file__), os.pardir)


def run(script, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.abspath(PACKAGE_ROOT) + os.pathsep + \
        env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, script),
                          *args], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout


def test_quickstart():
    out = run("quickstart.py")
    assert "received 1000 delivered 1100" in out
    assert "'iothub': 100" in out and "'DEV/filter/in': 1000" in out


def test_route_manifest_counts_add_up():
    out = run("route_manifest.py", "--messages", "2000")
    lines = out.splitlines()
    assert lines[0].startswith("sent 2000 messages")
    counts = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    assert set(counts) == {"iothub", "DEV/filter/input1", "DEV/alarm/hot"}
    assert all(n > 0 for n in counts.values())
