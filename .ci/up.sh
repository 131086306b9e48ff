#!/usr/bin/env bash
# `npm run up`: everything from a fresh Debian machine (root, Node 20, git) to a serving Kiln.
# Installs what is missing, starts dockerd and Redis if they are not running, builds the runner
# images (cached), builds the app and (re)starts `kiln serve` in the background.
# KILN_UP_FOREGROUND=1 runs the server in the foreground instead (for systemd or a container).
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh
DATA_DIR=${KILN_DATA_DIR:-$PWD/data}
HOST=${KILN_HOST:-127.0.0.1}
PORT=${KILN_PORT:-3000}
mkdir -p "$DATA_DIR/logs"

check_node
ensure_npm_deps
bash .ci/prereqs.sh
build_app
say "runner images: building what changed, probing, publishing"
node src/bin/kiln.js images

bash .ci/down.sh --quiet
if [ "${KILN_UP_FOREGROUND:-}" = 1 ]; then
  exec node src/bin/kiln.js serve
fi
say "starting kiln serve (log: $DATA_DIR/logs/kiln.log)"
setsid nohup node src/bin/kiln.js serve >>"$DATA_DIR/logs/kiln.log" 2>&1 </dev/null &
echo $! >"$DATA_DIR/kiln.pid"
for _ in $(seq 1 120); do
  if node -e "require('http').get('http://$HOST:$PORT/api/v1/health',r=>process.exit(r.statusCode<500?0:1)).on('error',()=>process.exit(1))" 2>/dev/null; then
    say "Kiln is serving on http://$HOST:$PORT  (API /api/v1, docs /api/docs; stop with: npm run down)"
    if [ -z "${KILN_ADMIN_TOKEN:-}" ]; then say "admin token: $DATA_DIR/admin-token  (export KILN_TOKEN=\$(cat $DATA_DIR/admin-token))"; fi
    exit 0
  fi
  kill -0 "$(cat "$DATA_DIR/kiln.pid")" 2>/dev/null || { tail -n 30 "$DATA_DIR/logs/kiln.log" >&2; die "kiln serve exited; log above"; }
  sleep 0.5
done
die "kiln serve did not become healthy in 60 s; see $DATA_DIR/logs/kiln.log"
