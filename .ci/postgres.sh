#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests (installing Debian's postgresql if missing) and
# prints `DATABASE_URL DIR`. `.ci/postgres.sh stop DIR` stops it and removes DIR. Tests only: trust
# auth on 127.0.0.1. For fault tests: `halt DIR` stops the server (fast shutdown: sessions are ended)
# and keeps its data; `resume DIR` starts it again on the same port.
set -euo pipefail
case "${1:-}" in
  stop)
    dir=${2:?dir}
    su postgres -s /bin/sh -c "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl -D '$dir' -m immediate stop" >/dev/null 2>&1 || true
    rm -rf "$dir"
    exit 0 ;;
  halt)
    dir=${2:?dir}
    su postgres -s /bin/sh -c "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl -D '$dir' -m fast -w stop >/dev/null"
    exit 0 ;;
  resume)
    dir=${2:?dir}
    [ -f "$dir/kiln-options" ] || { echo "postgres.sh: $dir was not started by postgres.sh (no kiln-options)" >&2; exit 1; }
    su postgres -s /bin/sh -c "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl -D '$dir' -l '$dir/log' -o '$(cat "$dir/kiln-options")' -w start >/dev/null"
    exit 0 ;;
esac
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "postgres.sh: PostgreSQL is not installed and only root can install it" >&2; exit 1; }
  echo "postgres.sh: installing postgresql from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=${1:-$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")}
dir=$(mktemp -d /tmp/kiln-pg-XXXXXX)
chown postgres:postgres "$dir"
su postgres -s /bin/sh -c "$bin/initdb -D '$dir' -A trust -U kiln >/dev/null"
# The server's options are kept next to its data: `resume` starts it again exactly so (same port).
options="-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off"
echo "$options" > "$dir/kiln-options"
su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir' -l '$dir/log' -o '$options' -w start >/dev/null"
su postgres -s /bin/sh -c "$bin/createdb -h 127.0.0.1 -p $port -U kiln kiln"
echo "postgres://kiln@127.0.0.1:$port/kiln $dir"
