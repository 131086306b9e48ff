#!/usr/bin/env bash
# Makes a minimal Debian root filesystem for a base image when no registry serves debian:<suite>-slim.
#   runner-images/debootstrap.sh <suite> <empty-dir> <mirror>
# Kiln then streams the folder as a tar into the engine's image import (`kiln-base:<suite>`).
set -euo pipefail
suite=${1:?suite}; root=${2:?dir}; mirror=${3:?mirror}
case "$suite" in *[!a-z]*|"") echo "debootstrap.sh: bad suite name: $suite" >&2; exit 2 ;; esac
# A debootstrap older than the suite has no script for it; Debian's scripts for new suites are sid's.
script=/usr/share/debootstrap/scripts/$suite
[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
debootstrap --variant=minbase "$suite" "$root" "$mirror" "$script" >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2; echo "debootstrap.sh: debootstrap of $suite from $mirror failed" >&2; exit 1; }
rm -f "$root.log"
# Slim as debian:*-slim is: no apt lists, binary caches or logs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
