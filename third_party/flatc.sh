#!/bin/sh
# Runs Debian's flatc; it must match libflatbuffers-dev (both 2.0.8).
exec /usr/bin/flatc "$@"
