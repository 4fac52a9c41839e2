#!/usr/bin/env bash
# Builds the Debian package from an existing Bazel build and checks it:
# name and fields, Depends covering every library the binaries load, apt's
# dependency resolution (simulated), the contents, `edgeroute check` run
# from the unpacked package, the systemd unit (systemd-analyze verify) and
# the unit's notify protocol with the packaged binary.
#
#   bash packaging/tests/deb_test.sh [--bazel-bin DIR] [--junit FILE]
#
# Runs no Bazel itself (see install_test.sh) and installs nothing on the
# machine: the package is unpacked with dpkg -x into a scratch root.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
source packaging/tests/junit.sh
test_args deb "$@"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="$(tr -d ' \n' < VERSION)"
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
deb="$work/out/edgeroute_${version}_${arch}.deb"
root="$work/root"
export LD_LIBRARY_PATH="$root/usr/lib/$multiarch"

build_deb() {
  set -e
  out="$(bash scripts/package-deb.sh --no-build --bazel-bin "$bazel_bin" --out "$work/out" | tail -1)"
  test "$out" = "$deb"
  test "$(dpkg-deb -f "$deb" Package)" = edgeroute
  test "$(dpkg-deb -f "$deb" Version)" = "$version"
  test "$(dpkg-deb -f "$deb" Architecture)" = "$arch"
  dpkg-deb -x "$deb" "$root"
}

depends_cover_needed() {
  set -e
  local depends names missing=0
  depends="$(dpkg-deb -f "$deb" Depends)"
  # Package names only: "a (>= 1), b | c" -> a b c, one a line.
  names="$(printf '%s' "$depends" | tr ',|' '\n\n' | sed 's/(.*//; s/ //g')"
  /usr/bin/python3 packaging/tests/depends_check.py "$deb" \
    "$root/usr/lib/$multiarch/libedgeroute.so.$version" "$root/usr/bin/edgeroute"
  # The runtime libraries this package must name.
  for pkg in libc6 libstdc++6 librocksdb7.8 libabsl20220623 libsystemd0; do
    printf '%s\n' "$names" | grep -Fqx "$pkg" || { echo "no $pkg"; missing=1; }
  done
  # Build-only packages must not be required at run time.
  ! printf '%s\n' "$names" | grep -q -- '-dev$'
  [ $missing -eq 0 ]
}

apt_resolves() {
  set -e
  # What `apt install ./edgeroute_....deb` would do, without doing it.
  apt-get install -s -q "$deb" > "$work/apt.txt"
  cat "$work/apt.txt"
  grep -q "^Inst edgeroute ($version" "$work/apt.txt"
}

contents() {
  set -e
  local lib="$root/usr/lib/$multiarch"
  test "$(readlink "$lib/libedgeroute.so.0")" = "libedgeroute.so.$version"
  test -f "$lib/libedgeroute.a"
  test -f "$root/usr/include/edgeroute/edgeroute.h"
  grep -qx "prefix=/usr" "$lib/pkgconfig/edgeroute.pc"
  grep -qx "libdir=/usr/lib/$multiarch" "$lib/pkgconfig/edgeroute.pc"
  test -f "$lib/cmake/edgeroute/edgerouteConfig.cmake"
  test -f "$root/usr/share/man/man1/edgeroute.1.gz"
  test -f "$root/lib/systemd/system/edgeroute.service"
  test -f "$root/usr/lib/sysusers.d/edgeroute.conf"
  dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work" ./conffiles ./shlibs ./triggers ./postinst
  grep -qx /etc/edgeroute/manifest.json "$work/conffiles"
  grep -qx "libedgeroute 0 edgeroute (>= $version)" "$work/shlibs"
  grep -q ldconfig "$work/triggers"
  sh -n "$work/postinst"
  # Stripped: no debug sections shipped.
  ! readelf -S "$lib/libedgeroute.so.$version" | grep -q '\.debug_info'
}

check_from_package() {
  set -e
  test "$("$root/usr/bin/edgeroute" --version)" = "edgeroute $version"
  "$root/usr/bin/edgeroute" check "$root/etc/edgeroute/manifest.json"
  "$root/usr/bin/edgeroute" check examples/deployment.json
}

unit_verifies() {
  set -e
  local unit="$root/lib/systemd/system/edgeroute.service"
  grep -qx 'Type=notify' "$unit"
  grep -q '^WatchdogSec=' "$unit"
  grep -qx 'StateDirectory=edgeroute' "$unit"
  grep -q '^ExecStart=/usr/bin/edgeroute run --manifest /etc/edgeroute/manifest.json --store %S/edgeroute' "$unit"
  # Verified with ExecStart pointing into the scratch root (verify checks
  # that the command exists); --man=no: the man page is not installed here.
  mkdir -p "$work/unit"
  sed "s|/usr/bin/edgeroute|$root/usr/bin/edgeroute|" "$unit" > "$work/unit/edgeroute.service"
  systemd-analyze verify --man=no "$work/unit/edgeroute.service"
}

service_user() {
  set -e
  # What postinst does, into a scratch root: the unit's User= exists after.
  mkdir -p "$work/sysroot/etc"
  systemd-sysusers --root="$work/sysroot" "$root/usr/lib/sysusers.d/edgeroute.conf"
  user="$(sed -n 's/^User=//p' "$root/lib/systemd/system/edgeroute.service")"
  grep -q "^$user:x:[0-9]*:[0-9]*:.*:/var/lib/edgeroute:" "$work/sysroot/etc/passwd"
}

notify_protocol() {
  set -e
  # The unit's command line, with the scratch root's paths and a free port.
  /usr/bin/python3 packaging/tests/notify_check.py "$root/usr/bin/edgeroute" run \
    --manifest "$root/etc/edgeroute/manifest.json" --store "$work/state" \
    --listen tcp:127.0.0.1:0
}

junit_begin packaging.deb "$junit"
run_case build_deb build_deb
run_case depends_cover_needed_libraries depends_cover_needed
if command -v apt-get >/dev/null; then
  run_case apt_install_simulated apt_resolves
else
  skip_case apt_install_simulated "apt-get not found"
fi
run_case package_contents contents
run_case edgeroute_check_from_package check_from_package
if command -v systemd-analyze >/dev/null && systemd-analyze --version >/dev/null 2>&1; then
  run_case systemd_unit_verifies unit_verifies
else
  skip_case systemd_unit_verifies "systemd-analyze does not run here"
fi
if command -v systemd-sysusers >/dev/null; then
  run_case service_user_from_sysusers service_user
else
  skip_case service_user_from_sysusers "systemd-sysusers not found"
fi
run_case notify_ready_watchdog_stopping notify_protocol
junit_end
