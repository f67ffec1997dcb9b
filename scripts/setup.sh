#!/usr/bin/env bash
# Install what the server, the tests and the benchmarks need, idempotently:
#   Debian packages (only those missing), a virtualenv in .venv with the project, and npm packages.
# Usage: scripts/setup.sh [run|test|bench]   (default: test)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-test}"
python="${PYTHON:-python3}"

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have "$python" || need_apt+=(python3 python3-venv)
have node || need_apt+=(nodejs)  # every profile: the dashboard's and /docs' browser files come from npm
have npm || need_apt+=(npm)
if [[ "$profile" != run ]]; then
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
  have chromium || need_apt+=(chromium)
  have redis-server || need_apt+=(redis-server)  # the carrier between the nodes of a cluster
  have haproxy || [[ -x /usr/sbin/haproxy ]] || need_apt+=(haproxy)  # the load balancer of `make cluster` and its tests
fi
if ((${#need_apt[@]})); then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  sudo_cmd=()
  [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
# Exact versions with hashes from the lock file (`make lock` regenerates it from pyproject.toml),
# then the project itself without resolving anything again.
case "$profile" in
  run) lock=requirements/run.lock ;;
  bench) lock=requirements/bench.lock ;;
  *) lock=requirements/dev.lock ;;
esac
stamp=.venv/.installed-$profile
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" || "$lock" -nt "$stamp" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q --require-hashes -r "$lock"
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi

# web/: browser files served under /vendor/ (pinned by web/package-lock.json), for every profile.
# --ignore-scripts there: none of them needs an install script, and swagger-ui-dist's @scarf would
# phone home from one.
npm_install() {  # dir [extra npm args]
  local dir=$1
  shift
  if [[ ! -d "$dir/node_modules" || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error "$@"
    touch "$dir/node_modules"
  fi
}
npm_install web --ignore-scripts
if [[ "$profile" != run ]]; then
  npm_install tests/js
fi
if [[ "$profile" == bench && -f bench/node/package.json ]]; then
  npm_install bench/node
fi
