#!/usr/bin/env bash
# Installs (Debian/Ubuntu, as root) and starts what Kiln needs besides Node:
# a Docker engine, debootstrap (to make base images without a registry) and a local Redis.
# Idempotent: what is installed is not installed again, what runs is not started again.
# Used by `npm run up`, `npm test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA_DIR=${KILN_DATA_DIR:-$ROOT/data}
mkdir -p "$DATA_DIR/redis" "$DATA_DIR/logs"

say() { printf 'kiln-prereqs: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v git >/dev/null 2>&1 || missing+=(git)

if [ ${#missing[@]} -gt 0 ]; then
  debian_like=no
  if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in *" debian "*|*" ubuntu "*) debian_like=yes ;; esac
  fi
  if [ "$(id -u)" != 0 ] || [ "$debian_like" != yes ] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing: ${missing[*]}. Kiln installs these itself only as root on Debian/Ubuntu.
  Provide them yourself: a Docker engine (API >= 1.41) reachable at DOCKER_HOST or /var/run/docker.sock,
  debootstrap on PATH (only needed when no registry serves debian:<suite>-slim),
  a Redis >= 6 at REDIS_URL (default redis://127.0.0.1:6379), and git."
  fi
  say "installing from Debian's packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || apt-get update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
fi

# --- gVisor (runsc) ----------------------------------------------------------------------------
# A second container runtime for defence in depth (KILN_RUNTIME=runsc, KILN_RUNSC_ENVIRONMENTS).
# Registered in the local engine's daemon.json twice: `runsc` with networking off (a job without egress
# has no network), `runsc-egress` for jobs that reach an allowed host through their egress gateway.
runsc_changed=no
if [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" = 0 ]; then
  if ! command -v runsc >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    say "installing gVisor (runsc) from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runsc >/dev/null 2>&1 \
      || say "runsc is not installable here: jobs can run under runc only (KILN_RUNTIME=runsc would be reported missing by /api/v1/health)"
  fi
  if command -v runsc >/dev/null 2>&1; then
    mkdir -p /etc/docker
    runsc_changed=$(RUNSC="$(command -v runsc)" node -e '
      const fs = require("fs"); const f = "/etc/docker/daemon.json";
      let cfg = {}; try { cfg = JSON.parse(fs.readFileSync(f, "utf8")); } catch (e) { if (e.code !== "ENOENT") { console.error(f + ": " + e.message); process.exit(1); } }
      const want = { path: process.env.RUNSC, runtimeArgs: ["--network=none"] };
      // Jobs with egress: gVisor passes their sockets to the job network namespace Docker made (its own
      // network stack cannot start on this kernel: runsc takes every namespace for the root one).
      const egress = { path: process.env.RUNSC, runtimeArgs: ["--network=host"] };
      cfg.runtimes = cfg.runtimes || {};
      if (JSON.stringify(cfg.runtimes.runsc) === JSON.stringify(want) && JSON.stringify(cfg.runtimes["runsc-egress"]) === JSON.stringify(egress)) { console.log("no"); process.exit(0); }
      cfg.runtimes.runsc = want;
      cfg.runtimes["runsc-egress"] = egress;
      fs.writeFileSync(f, JSON.stringify(cfg, null, 2) + "\n");
      console.log("yes");')
    [ "$runsc_changed" = no ] || say "registered runsc in /etc/docker/daemon.json"
  fi
fi

# --- Docker engine -----------------------------------------------------------------------------
# The engine answers /_ping (through dockerode, so DOCKER_HOST is honoured as Kiln will honour it).
docker_ok() {
  node -e "new (require('dockerode'))().ping().then(()=>process.exit(0),()=>process.exit(1)); setTimeout(()=>process.exit(1),3000)" >/dev/null 2>&1
}
docker_runtimes() {
  node -e "new (require('dockerode'))().info().then((i)=>{console.log(Object.keys(i.Runtimes||{}).join('\n'));process.exit(0)},()=>process.exit(1))" 2>/dev/null
}
if ! docker_ok; then
  [ -z "${DOCKER_HOST:-}" ] || die "the Docker engine at DOCKER_HOST=$DOCKER_HOST does not answer"
  [ "$(id -u)" = 0 ] || die "no Docker engine answers at /var/run/docker.sock and only root can start one here"
  say "starting dockerd (log: $DATA_DIR/logs/dockerd.log)"
  setsid nohup dockerd >"$DATA_DIR/logs/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker_ok && break; sleep 0.5; done
  docker_ok || die "dockerd did not come up; see $DATA_DIR/logs/dockerd.log"
elif [ "$runsc_changed" = yes ] && pid=$(pidof dockerd 2>/dev/null); then
  # daemon.json's runtimes are reloadable: SIGHUP, no restart, running containers untouched.
  say "reloading dockerd's configuration (runsc)"
  kill -HUP $pid
  for _ in $(seq 1 20); do docker_runtimes | grep -qx runsc && break; sleep 0.25; done
fi

# --- Redis -----------------------------------------------------------------------------------
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
redis_hostport=${REDIS_URL#redis://}
redis_hostport=${redis_hostport#*@}
redis_hostport=${redis_hostport%%/*}
redis_host=${redis_hostport%%:*}
redis_port=${redis_hostport##*:}
[ "$redis_port" != "$redis_host" ] || redis_port=6379
if ! redis-cli -h "$redis_host" -p "$redis_port" ping >/dev/null 2>&1; then
  case "$redis_host" in
    127.0.0.1|localhost) ;;
    *) die "Redis at $REDIS_URL does not answer" ;;
  esac
  say "starting redis-server on 127.0.0.1:$redis_port (append-only file in $DATA_DIR/redis)"
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$DATA_DIR/redis" \
    --appendonly yes --daemonize yes --logfile "$DATA_DIR/logs/redis.log" \
    --pidfile "$DATA_DIR/redis/redis.pid"
  for _ in $(seq 1 40); do redis-cli -h "$redis_host" -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.25; done
  redis-cli -h "$redis_host" -p "$redis_port" ping >/dev/null 2>&1 || die "redis-server did not come up; see $DATA_DIR/logs/redis.log"
fi
say "ready: docker engine (runtimes: $(docker_runtimes | paste -sd, -)), redis at $redis_host:$redis_port"
