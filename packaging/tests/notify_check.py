#!/usr/bin/env python3
"""Runs a command as systemd runs a Type=notify service with a watchdog and
checks what it reports: READY=1, then WATCHDOG=1 pings, and after SIGTERM
STOPPING=1 and a clean exit.

  notify_check.py COMMAND [ARG...]

The notification socket is a datagram socket in a temporary directory;
WATCHDOG_USEC is 1 s, so pings come every half second. Waits are bounded.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def receive_until(sock, wanted, deadline, seen):
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(4096).decode(errors="replace")
        except socket.timeout:
            break
        for line in data.splitlines():
            seen.append(line)
            if line == wanted:
                return True
    return False


def main(argv):
    with tempfile.TemporaryDirectory(prefix="notify-", dir="/tmp") as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
        env.pop("WATCHDOG_PID", None)
        child = subprocess.Popen(argv, env=env)
        seen = []
        try:
            if not receive_until(sock, "READY=1", time.monotonic() + 90, seen):
                print("FAIL: no READY=1 (got %r)" % seen)
                return 1
            pings = 0
            deadline = time.monotonic() + 30
            while pings < 3:
                if not receive_until(sock, "WATCHDOG=1", deadline, seen):
                    print("FAIL: %d WATCHDOG=1 in 30 s (got %r)" % (pings, seen))
                    return 1
                pings += 1
            child.send_signal(signal.SIGTERM)
            if not receive_until(sock, "STOPPING=1", time.monotonic() + 60, seen):
                print("FAIL: no STOPPING=1 after SIGTERM (got %r)" % seen)
                return 1
            code = child.wait(timeout=60)
            if code != 0:
                print("FAIL: exit status %d after SIGTERM" % code)
                return 1
            print("OK: READY=1, %d WATCHDOG=1, STOPPING=1, exit 0" % pings)
            return 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
