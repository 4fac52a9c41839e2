#!/usr/bin/env bash
# VERSION is the release version; every file that has to spell it out must
# agree: the C header's macros, the Python, Go and Node.js packages. (The
# CLI, pkg-config, CMake and the .deb derive it from VERSION when built.)
set -euo pipefail
version_file="$1" header="$2" pyproject="$3" python_native="$4" go_file="$5" package_json="$6"
version="$(tr -d ' \n' < "$version_file")"
IFS=. read -r major minor patch <<<"$version"
fail=0
expect() {  # expect WHAT ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1 is '$2', VERSION says '$3'" >&2
    fail=1
  else
    echo "ok: $1 = $2"
  fi
}
macro() { sed -n "s/^#define $1 \(.*\)$/\1/p" "$header" | tr -d '"'; }
expect "EDGEROUTE_VERSION_STRING" "$(macro EDGEROUTE_VERSION_STRING)" "$version"
expect "EDGEROUTE_VERSION_MAJOR" "$(macro EDGEROUTE_VERSION_MAJOR)" "$major"
expect "EDGEROUTE_VERSION_MINOR" "$(macro EDGEROUTE_VERSION_MINOR)" "$minor"
expect "EDGEROUTE_VERSION_PATCH" "$(macro EDGEROUTE_VERSION_PATCH)" "$patch"
expect "pyproject.toml version" "$(sed -n 's/^version = "\(.*\)"$/\1/p' "$pyproject")" "$version"
expect "python _MAJOR.._MINOR" \
  "$(sed -n 's/^_MAJOR = //p' "$python_native").$(sed -n 's/^_MINOR = //p' "$python_native")" "$major.$minor"
expect "Go Release" "$(sed -n 's/^const Release = "\(.*\)"$/\1/p' "$go_file")" "$version"
expect "package.json version" \
  "$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$package_json")" "$version"
exit $fail
