#!/usr/bin/env bash
# Builds edgeroute (Bazel, offline, -c opt) and installs the C library, its
# header, pkg-config and CMake files, the edgeroute command and its man page.
#
#   bash scripts/install.sh [--prefix /usr/local] [--destdir DIR]
#                           [--libdir DIR] [--no-build [--bazel-bin DIR]]
#                           [--strip] [--systemd-unit DIR]
#
# --prefix     where the files will live (default /usr/local); written into
#              edgeroute.pc. The CMake files find their place themselves.
# --destdir    stage below DIR (DIR/PREFIX/...), as packagers do.
# --libdir     the library directory (default PREFIX/lib).
# --no-build   install what an earlier Bazel build left in bazel-bin (or in
#              --bazel-bin DIR) instead of building; that build must include
#              //bindings/c:libedgeroute.so.0, //bindings/c:libedgeroute_static
#              and //tools:edgeroute (a plain `bazel test //...` does).
# --strip      strip debug symbols from the library and the command.
# --systemd-unit DIR  also install packaging/edgeroute.service into DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
destdir=""
libdir=""
build=1
bazel_bin=""
strip=0
unit_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --destdir) destdir="$2"; shift 2 ;;
    --destdir=*) destdir="${1#*=}"; shift ;;
    --libdir) libdir="$2"; shift 2 ;;
    --libdir=*) libdir="${1#*=}"; shift ;;
    --no-build) build=0; shift ;;
    --bazel-bin) bazel_bin="$2"; shift 2 ;;
    --bazel-bin=*) bazel_bin="${1#*=}"; shift ;;
    --strip) strip=1; shift ;;
    --systemd-unit) unit_dir="$2"; shift 2 ;;
    --systemd-unit=*) unit_dir="${1#*=}"; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$prefix" in
  /*) ;;
  *) echo "install.sh: --prefix must be absolute" >&2; exit 2 ;;
esac
prefix="${prefix%/}"
[ -n "$prefix" ] || prefix=/
libdir="${libdir:-$prefix/lib}"
case "$libdir" in
  "$prefix"/*) ;;
  *) echo "install.sh: --libdir must be below the prefix" >&2; exit 2 ;;
esac

version="$(tr -d ' \n' < VERSION)"
major="${version%%.*}"

TARGETS=(//bindings/c:libedgeroute.so.0 //bindings/c:libedgeroute_static //tools:edgeroute)
if [ "$build" = 1 ]; then
  echo "== bazel build -c opt ${TARGETS[*]}" >&2
  bazel build -c opt --noshow_progress "${TARGETS[@]}"
  bazel_bin="$(bazel info -c opt bazel-bin)"
fi
bazel_bin="${bazel_bin:-bazel-bin}"
for f in bindings/c/libedgeroute.so.0 bindings/c/libedgeroute.a \
         bindings/c/libedgeroute.a.link_flags tools/edgeroute; do
  if [ ! -f "$bazel_bin/$f" ]; then
    echo "install.sh: $bazel_bin/$f is missing; build ${TARGETS[*]}" \
         "or drop --no-build" >&2
    exit 1
  fi
done
built_version="$("$bazel_bin/tools/edgeroute" --version)"
if [ "$built_version" != "edgeroute $version" ]; then
  echo "install.sh: $bazel_bin holds '$built_version', VERSION says $version;" \
       "rebuild" >&2
  exit 1
fi

root="$destdir"
lib="$root$libdir"
inc="$root$prefix/include/edgeroute"
bin="$root$prefix/bin"
man="$root$prefix/share/man/man1"
mkdir -p "$lib/pkgconfig" "$lib/cmake/edgeroute" "$inc" "$bin" "$man"

# The library: the file carries the full version, the soname link the major
# one (what programs load), the plain link is for linkers (-ledgeroute).
install -m 0644 "$bazel_bin/bindings/c/libedgeroute.so.0" "$lib/libedgeroute.so.$version"
ln -sfn "libedgeroute.so.$version" "$lib/libedgeroute.so.$major"
ln -sfn "libedgeroute.so.$major" "$lib/libedgeroute.so"
install -m 0644 "$bazel_bin/bindings/c/libedgeroute.a" "$lib/libedgeroute.a"
install -m 0644 bindings/c/edgeroute.h "$inc/edgeroute.h"
install -m 0755 "$bazel_bin/tools/edgeroute" "$bin/edgeroute"
if [ "$strip" = 1 ]; then
  strip --strip-unneeded "$lib/libedgeroute.so.$version"
  strip --strip-debug "$lib/libedgeroute.a"
  strip "$bin/edgeroute"
fi

# What the static archive needs from the system, from the build graph
# (static_archive.bzl), for pkg-config's Libs.private and CMake.
link_flags="$(cat "$bazel_bin/bindings/c/libedgeroute.a.link_flags")"
cmake_link="$(printf '%s' "$link_flags" | tr -s ' ' ';')"
# From <libdir>/cmake/edgeroute back to the prefix.
rel="${libdir#"$prefix"}"
up="../.."
IFS=/ read -ra parts <<<"${rel#/}"
for _ in "${parts[@]}"; do up="$up/.."; done

subst() {
  sed -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" \
      -e "s|@MINOR@|$(echo "$version" | cut -d. -f2)|g" \
      -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" \
      -e "s|@LIBS_PRIVATE@|$link_flags|g" \
      -e "s|@CMAKE_LINK_LIBRARIES@|$cmake_link|g" \
      -e "s|@LIBDIR_TO_PREFIX@|$up|g" "$1"
}
subst packaging/edgeroute.pc.in > "$lib/pkgconfig/edgeroute.pc"
subst packaging/edgerouteConfig.cmake.in > "$lib/cmake/edgeroute/edgerouteConfig.cmake"
subst packaging/edgerouteConfigVersion.cmake.in \
  > "$lib/cmake/edgeroute/edgerouteConfigVersion.cmake"
chmod 0644 "$lib/pkgconfig/edgeroute.pc" "$lib/cmake/edgeroute/"*.cmake

# The man page, made from `edgeroute --help` and `--version`.
if command -v help2man >/dev/null 2>&1; then
  help2man --no-info --no-discard-stderr \
    --name "message routing for IoT edge gateways (edgeHub routes)" \
    --section 1 "$bazel_bin/tools/edgeroute" | gzip -9n > "$man/edgeroute.1.gz"
else
  echo "install.sh: help2man not found (bash scripts/setup.sh); no man page" >&2
fi

if [ -n "$unit_dir" ]; then
  mkdir -p "$root$unit_dir"
  sed -e "s|@BINDIR@|$prefix/bin|g" packaging/edgeroute.service \
    > "$root$unit_dir/edgeroute.service"
  chmod 0644 "$root$unit_dir/edgeroute.service"
fi

if [ -z "$destdir" ] && [ "$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then
  ldconfig 2>/dev/null || true
fi
echo "installed edgeroute $version into $root$prefix (libdir $libdir)" >&2
