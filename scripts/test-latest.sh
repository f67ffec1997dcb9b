#!/usr/bin/env bash
# Run the test suite against the newest release of every dependency, upper bounds ignored,
# in .venv-latest (the locked .venv is untouched). Tells whether a bound can move up.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[[ -x .venv-latest/bin/python ]] || "$python" -m venv .venv-latest
unbounded=$("$python" - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
# Keep each name, its extras and its environment marker; drop the version range.
for requirement in requirements:
    spec, _, marker = requirement.partition(";")
    name = re.match(r"[A-Za-z0-9_.\-]+(\[[^\]]*\])?", spec.strip()).group(0)
    print(f"{name};{marker}" if marker else name)
PY
)
.venv-latest/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086 # one requirement per line
mapfile -t requirements <<<"$unbounded"
.venv-latest/bin/python -m pip install -q --upgrade "${requirements[@]}"
.venv-latest/bin/python -m pip install -q --no-deps -e .
.venv-latest/bin/python -m pip list 2>/dev/null | grep -i -E '^(aiohttp|bidict|python-socketio|python-engineio|pydantic|sqlalchemy) '
CI="${CI:-false}" .venv-latest/bin/python -m pytest -q "$@"
