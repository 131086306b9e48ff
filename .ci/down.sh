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
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$pidfile"
  echo "kiln: stopped kiln serve (pid $pid)" >&2
else
  rm -f "$pidfile"
  [ "$quiet" = --quiet ] || echo "kiln: no kiln serve started by npm run up is running" >&2
fi
