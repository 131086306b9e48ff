#!/usr/bin/env bash
# `npm test [-- lint|unit|medium|e2e|attack|cluster ...]`: prerequisites, a clean build, the runner images,
# then the test tiers with node's test runner. Tests use their own data folders; a running Kiln is untouched.
# The cluster tier starts its own PostgreSQL (.ci/postgres.sh) and redis-server, and restarts the
# machine's dockerd once (a fault it injects): do not run another Kiln test at the same time.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh
tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(lint unit medium e2e attack cluster)

check_node
ensure_npm_deps
bash .ci/prereqs.sh
rm -rf dist
build_app
for t in "${tiers[@]}"; do
  if [ "$t" = e2e ] && ! command -v chromium >/dev/null 2>&1; then
    # The web pages' tests drive Debian's Chromium (no browser download).
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "the e2e tier needs Chromium at /usr/bin/chromium (Debian: apt-get install chromium)"
    say "installing chromium from Debian's packages (browser tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
  fi
  if [ "$t" = e2e ] || [ "$t" = attack ] || [ "$t" = cluster ]; then
    say "runner images for $t (cached when unchanged)"
    KILN_DATA_DIR=$(mktemp -d /tmp/kiln-images-XXXXXX) node src/bin/kiln.js images >/dev/null
  fi
done

pg_dir=
cleanup() { [ -z "$pg_dir" ] || bash .ci/postgres.sh stop "$pg_dir"; }
trap cleanup EXIT
for t in "${tiers[@]}"; do
  if [ "$t" = medium ] && [ -z "${KILN_TEST_DATABASE_URL:-}" ]; then
    read -r KILN_TEST_DATABASE_URL pg_dir < <(bash .ci/postgres.sh)
    export KILN_TEST_DATABASE_URL
    say "PostgreSQL for the medium tier: $KILN_TEST_DATABASE_URL"
  fi
done

failed=()
for t in "${tiers[@]}"; do
  if [ "$t" = lint ]; then
    # First and fast: typescript-eslint's defect rules (eslint.config.mjs), then Prettier's formatting.
    say "tier: lint"
    npm run -s lint || failed+=(lint)
    continue
  fi
  case "$t" in
    unit) files=$(find dist/src -name '*.spec.js' | sort) ;;
    medium|e2e|attack|cluster) files=$(find "dist/test/$t" -name '*.test.js' 2>/dev/null | sort) ;;
    *) die "unknown test tier '$t' (lint, unit, medium, e2e, attack, cluster)" ;;
  esac
  [ -n "$files" ] || die "no test files in tier $t"
  if [ "$t" = attack ]; then
    # The attack suite runs under every container runtime the engine offers Kiln: runc, and gVisor's
    # runsc (registered by prereqs.sh). A missing runsc fails the tier rather than skipping it.
    for rt in ${KILN_TEST_RUNTIMES:-runc runsc}; do
      say "tier: attack (runtime $rt)"
      # shellcheck disable=SC2086
      KILN_TEST_RUNTIME=$rt node --enable-source-maps --test --test-reporter=spec --test-concurrency=1 $files || failed+=("attack/$rt")
    done
    continue
  fi
  say "tier: $t"
  # shellcheck disable=SC2086
  node --enable-source-maps --test --test-reporter=spec --test-concurrency=1 $files || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED tiers: ${failed[*]}"
  exit 1
fi
say "all tiers passed: ${tiers[*]}"
