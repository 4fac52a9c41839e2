#!/usr/bin/env python3
"""Checks that a .deb's Depends names, for every library its binaries link
directly (ELF NEEDED), a package that ships that library.

  depends_check.py DEB BINARY...

Libraries the package ships itself are skipped; the owner of each other
library is asked of dpkg (`dpkg -S`, both /lib and /usr/lib spellings).
"""
import os
import re
import subprocess
import sys


def needed(binary):
    out = subprocess.run(["readelf", "-d", binary], check=True,
                         capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\).*\[(.+?)\]", out)


def main(deb, binaries):
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], check=True,
                             capture_output=True, text=True).stdout
    names = {re.sub(r"\(.*", "", alt).strip()
             for item in depends.split(",") for alt in item.split("|")}
    shipped = {os.path.basename(b) for b in binaries}
    libs = sorted({n for b in binaries for n in needed(b)} - shipped)
    libs = [n for n in libs if not n.startswith("libedgeroute.so")]
    multiarch = subprocess.run(["gcc", "-print-multiarch"], check=True,
                               capture_output=True, text=True).stdout.strip()
    # Substring patterns: "x86_64-linux-gnu/libc.so.6" matches both the
    # /lib and the /usr/lib path.
    result = subprocess.run(["dpkg", "-S"] + ["%s/%s" % (multiarch, n)
                                              for n in libs],
                            capture_output=True, text=True)
    owners = {}
    for line in result.stdout.splitlines():
        packages, path = line.split(": ", 1)
        lib = os.path.basename(path)
        for package in packages.split(", "):
            owners.setdefault(lib, set()).add(package.split(":")[0])
    bad = 0
    for lib in libs:
        found = owners.get(lib, set())
        if not found:
            print("no installed package ships %s" % lib)
            bad += 1
        elif not found & names:
            print("%s comes from %s, which Depends does not name"
                  % (lib, " or ".join(sorted(found))))
            bad += 1
    print("Depends: %s" % depends.strip())
    print("%d libraries linked directly, %d not covered" % (len(libs), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
