#!/usr/bin/env bash
# Runs the test suite (or the compiled test files given) once per Korean time of
# day, with the clock of every process of the run — node, the worker processes
# the tests start, and the embedded Postgres, whose now() the product reads —
# moved to that time today (libfaketime; Debian package `faketime`). A test whose
# outcome depends on the hour it runs at fails at one of them.
#
#   scripts/test-at-hours.sh                      # 00:30 01:30 11:59 12:01 19:00 23:58 KST
#   scripts/test-at-hours.sh 12:30 23:59 -- dist/test/ops.test.js
#
# Needs the embedded Postgres (no DATABASE_URL): a server outside the run keeps
# its own clock. 23:58 crosses midnight KST during the run on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DATABASE_URL:-}" ]; then
  echo "test-at-hours: unset DATABASE_URL: only the embedded Postgres started by the run runs on the moved clock" >&2
  exit 2
fi
lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
  echo "test-at-hours: libfaketime not found (apt-get install faketime)" >&2
  exit 2
fi
hours=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do hours+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#hours[@]} -gt 0 ] || hours=(00:30 01:30 11:59 12:01 19:00 23:58)
npx tsc -p .
status=0
for hm in "${hours[@]}"; do
  if ! [[ "$hm" =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]]; then
    echo "test-at-hours: '$hm' is not HH:MM" >&2
    exit 2
  fi
  now=$(date +%s)
  kst_today=$(TZ=Asia/Seoul date +%F)
  target=$(date -d "$kst_today $hm:00 +0900" +%s)
  offset=$((target - now))
  sign=$([ $offset -ge 0 ] && echo + || echo -)
  echo "== $hm KST today (clock moved by ${sign}${offset#-} s)"
  if LD_PRELOAD="$lib" FAKETIME="${sign}${offset#-}" FAKETIME_DONT_FAKE_MONOTONIC=1 node dist/test/harness/run.js "$@" > "/tmp/test-at-$hm.log" 2>&1; then
    echo "   $(tail -n 1 "/tmp/test-at-$hm.log")"
  else
    status=1
    echo "   $(tail -n 1 "/tmp/test-at-$hm.log")  (log: /tmp/test-at-$hm.log)"
    grep -E '^    not ok ' "/tmp/test-at-$hm.log" | sed 's/^/   /' || true
  fi
done
exit $status
