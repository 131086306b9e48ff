# Shared by .ci/up.sh and .ci/test.sh: Node check, npm dependencies, system prerequisites, build.
# shellcheck shell=bash
say() { if [ -t 2 ]; then printf '\033[1mkiln:\033[0m %s\n' "$*" >&2; else printf 'kiln: %s\n' "$*" >&2; fi; }
die() { say "$*"; exit 1; }

check_node() {
  command -v node >/dev/null || die "Node.js 20.19+ is required (node not found)"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || die "Node.js 20.19+ is required (found $(node --version))"
}

# npm ci when node_modules is missing or older than the lock file.
ensure_npm_deps() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

build_app() {
  say "building (tsc)"
  npx --no-install tsc -p tsconfig.json
}
