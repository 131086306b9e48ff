#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests (installing Debian's postgresql if missing) and
# prints its DATABASE_URL. `.ci/postgres.sh stop DIR` stops it. Tests only: trust auth on 127.0.0.1.
set -euo pipefail
if [ "${1:-}" = stop ]; then
  dir=${2:?dir}
  su postgres -s /bin/sh -c "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl -D '$dir' -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi
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
su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir' -l '$dir/log' -o '-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off' -w start >/dev/null"
su postgres -s /bin/sh -c "$bin/createdb -h 127.0.0.1 -p $port -U kiln kiln"
echo "postgres://kiln@127.0.0.1:$port/kiln $dir"
