# JUnit XML for shell test steps, counted by tools/ci/count_results.py.
#   source junit.sh; junit_begin SUITE FILE
#   run_case NAME command...    # passes when the command exits 0
#   skip_case NAME REASON
#   add_case NAME pass|fail [DETAIL]
#   junit_end                   # writes FILE; returns 1 if a case failed
#   test_args NAME "$@"          # the scripts' common options (below)

# The packaging tests' common options: --bazel-bin DIR (the build to
# install from; default the repository's bazel-bin) and --junit FILE
# (default $TMPDIR/packaging-NAME.junit.xml). Sets bazel_bin and junit.
# REQUIRES: $repo is the repository root.
test_args() {
  local name="$1"
  shift
  bazel_bin="$repo/bazel-bin"
  junit="${TMPDIR:-/tmp}/packaging-$name.junit.xml"
  while [ $# -gt 0 ]; do
    case "$1" in
      --bazel-bin) bazel_bin="$2"; shift 2 ;;
      --junit) junit="$2"; shift 2 ;;
      *) echo "$name test: unknown argument '$1'" >&2; exit 2 ;;
    esac
  done
}
junit_begin() {
  JUNIT_SUITE="$1"
  JUNIT_FILE="$2"
  JUNIT_CASES=""
  JUNIT_FAILED=0
  JUNIT_LOG="$(mktemp)"
  mkdir -p "$(dirname "$JUNIT_FILE")"
}

_junit_escape() {
  sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' \
    | tr -d '\000-\010\013\014\016-\037'
}

run_case() {
  local name="$1" start end status
  shift
  start=$(date +%s)
  echo "-- $JUNIT_SUITE: $name"
  ("$@") >"$JUNIT_LOG" 2>&1
  status=$?
  end=$(date +%s)
  if [ $status -eq 0 ]; then
    echo "   ok ($((end - start)) s)"
    JUNIT_CASES+="<testcase classname=\"$JUNIT_SUITE\" name=\"$name\" time=\"$((end - start))\"/>"
  else
    echo "   FAILED (exit $status):"
    tail -40 "$JUNIT_LOG" | sed 's/^/   | /'
    JUNIT_FAILED=$((JUNIT_FAILED + 1))
    JUNIT_CASES+="<testcase classname=\"$JUNIT_SUITE\" name=\"$name\" time=\"$((end - start))\"><failure message=\"exit $status\">$(tail -60 "$JUNIT_LOG" | _junit_escape)</failure></testcase>"
  fi
  return 0
}

# Records a case whose verdict was reached elsewhere (e.g. one `go test`
# function): add_case NAME pass|fail [DETAIL]
add_case() {
  if [ "$2" = pass ]; then
    JUNIT_CASES+="<testcase classname=\"$JUNIT_SUITE\" name=\"$1\"/>"
  else
    JUNIT_FAILED=$((JUNIT_FAILED + 1))
    JUNIT_CASES+="<testcase classname=\"$JUNIT_SUITE\" name=\"$1\"><failure message=\"failed\">$(printf '%s' "${3:-}" | _junit_escape)</failure></testcase>"
  fi
}

skip_case() {
  echo "-- $JUNIT_SUITE: $1 SKIPPED: $2"
  JUNIT_CASES+="<testcase classname=\"$JUNIT_SUITE\" name=\"$1\"><skipped message=\"$(printf '%s' "$2" | _junit_escape)\"/></testcase>"
}

junit_end() {
  mkdir -p "$(dirname "$JUNIT_FILE")"
  printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="%s" failures="%d">%s</testsuite></testsuites>\n' \
    "$JUNIT_SUITE" "$JUNIT_FAILED" "$JUNIT_CASES" > "$JUNIT_FILE"
  rm -f "$JUNIT_LOG"
  [ "$JUNIT_FAILED" -eq 0 ]
}
