#!/usr/bin/env bash
# Passes `go test -v` output through and ends with one plain line
# "N passed, N failed, N skipped" so a reader (and CI) sees the count at a glance.
# Exits with go test's status, which pipefail carries.
set -uo pipefail
awk '
  { print; fflush() }
  /^--- PASS/ { p++ } /^--- FAIL/ { f++ } /^--- SKIP/ { s++ }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }
'
