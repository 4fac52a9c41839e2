#!/usr/bin/env bash
# Builds the Debian package edgeroute_<version>_<arch>.deb: the library,
# header, pkg-config and CMake files, the edgeroute command, its man page and
# edgeroute.service, with Depends computed by dpkg-shlibdeps.
#
#   bash scripts/package-deb.sh [--out DIR] [--no-build [--bazel-bin DIR]]
#
# --out DIR    where the .deb goes (default: the repository root). The path
#              of the package is the last line printed.
# --no-build, --bazel-bin: as for scripts/install.sh.
# Install it with `apt install ./edgeroute_<version>_<arch>.deb`.
set -euo pipefail
cd "$(dirname "$0")/.."

out="$PWD"
install_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    --no-build) install_args+=(--no-build); shift ;;
    --bazel-bin) install_args+=(--bazel-bin "$2"); shift 2 ;;
    --bazel-bin=*) install_args+=("$1"); shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-deb.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"

version="$(tr -d ' \n' < VERSION)"
major="${version%%.*}"
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
libdir="/usr/lib/$multiarch"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Where dpkg-shlibdeps expects a package being built: debian/<package>.
stage="$work/src/debian/edgeroute"

bash scripts/install.sh "${install_args[@]}" --prefix /usr --libdir "$libdir" \
  --destdir "$stage" --strip --systemd-unit /lib/systemd/system

install -d -m 0755 "$stage/etc/edgeroute" "$stage/usr/lib/sysusers.d" \
  "$stage/usr/share/doc/edgeroute"
install -m 0644 packaging/etc/manifest.json packaging/etc/edgeroute.env \
  "$stage/etc/edgeroute/"
install -m 0644 packaging/edgeroute.sysusers "$stage/usr/lib/sysusers.d/edgeroute.conf"
install -m 0644 README.md "$stage/usr/share/doc/edgeroute/README.md"
install -m 0644 bindings/README.md "$stage/usr/share/doc/edgeroute/BINDINGS.md"

# Depends: the runtime libraries of the library and the command, from the
# shlibs/symbols files of the installed Debian packages.
mkdir -p "$work/src/debian"
printf 'Source: edgeroute\n\nPackage: edgeroute\nArchitecture: any\n' \
  > "$work/src/debian/control"
depends="$(cd "$work/src" && dpkg-shlibdeps -O --warnings=1 \
  "debian/edgeroute$libdir/libedgeroute.so.$version" debian/edgeroute/usr/bin/edgeroute \
  2> >(grep -v "should already be installed in their package" >&2) \
  | sed -n 's/^shlibs:Depends=//p')"
if [ -z "$depends" ]; then
  echo "package-deb.sh: dpkg-shlibdeps found no dependencies" >&2
  exit 1
fi

mkdir -p "$stage/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" packaging/debian/control.in > "$stage/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/prerm \
  packaging/debian/postrm "$stage/DEBIAN/"
printf '/etc/edgeroute/manifest.json\n/etc/edgeroute/edgeroute.env\n' \
  > "$stage/DEBIAN/conffiles"
# Other packages' binaries linked against libedgeroute.so.0 depend on us.
printf 'libedgeroute %s edgeroute (>= %s)\n' "$major" "$version" \
  > "$stage/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' > "$stage/DEBIAN/triggers"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' \
  | LC_ALL=C sort | xargs md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" \
  "$stage/DEBIAN/shlibs" "$stage/DEBIAN/triggers" "$stage/DEBIAN/md5sums"

deb="$out/edgeroute_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
