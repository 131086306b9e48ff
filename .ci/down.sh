#!/usr/bin/env bash
# `npm run down`: stops the kiln serve that `npm run up` started (dockerd and Redis keep running).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${KILN_DATA_DIR:-$PWD/data}
pidfile="$DATA_DIR/kiln.pid"
quiet=${1:-}
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  # Graceful: running jobs get KILN_SHUTDOWN_GRACE_SECONDS (default 60) to finish, then are cancelled.
  grace=${KILN_SHUTDOWN_GRACE_SECONDS:-60}
  echo "kiln: stopping kiln serve (pid $pid); running jobs get up to $grace s" >&2
  for _ in $(seq 1 $(( (grace + 30) * 4 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$pidfile"
  echo "kiln: stopped kiln serve (pid $pid)" >&2
else
  rm -f "$pidfile"
  [ "$quiet" = --quiet ] || echo "kiln: no kiln serve started by npm run up is running" >&2
fi
