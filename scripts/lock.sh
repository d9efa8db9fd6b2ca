#!/usr/bin/env bash
# `make lock`: requirements/worker.lock, the `worker` extra of pyproject.toml
# resolved to exact versions with a --hash for every distribution file of each
# (pip-tools' pip-compile --generate-hashes). The Docker image installs it with
# `pip install --require-hashes`, then the tokenlord wheel with --no-deps.
# pip-tools runs from a throwaway venv (never the project's .venv); the Python
# must be the image's minor version (3.11): markers resolve for the running one.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
PIP_TOOLS=${PIP_TOOLS:-pip-tools==7.7.0}
OUT=requirements/worker.lock
command -v "$PYTHON" >/dev/null || { echo "lock: no $PYTHON (set PYTHON=... to a Python 3.11)" >&2; exit 2; }
minor=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$minor" = 3.11 ] || { echo "lock: $PYTHON is Python $minor; the image runs 3.11 (set PYTHON=...)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokenlord-lock.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "$PIP_TOOLS"
# The extra's requirements, as pip-compile input (the base distribution has none;
# reading pyproject.toml avoids building the Rust project just for its metadata).
"$PYTHON" - >"$tmp/worker.in" <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
assert not project["dependencies"], "the base distribution has dependencies now: lock them too"
print("\n".join(project["optional-dependencies"]["worker"]))
PY
mkdir -p "$(dirname "$OUT")"
# PyPI only: a machine's local wheel directories or extra indexes (PIP_FIND_LINKS, ...) stay out.
(cd "$tmp" && env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL CUSTOM_COMPILE_COMMAND="make lock" \
    "$tmp/venv/bin/pip-compile" --quiet --generate-hashes --strip-extras --no-emit-index-url \
    --no-emit-find-links --annotation-style=line --output-file "$tmp/worker.lock" worker.in)
# pip-compile names its input in the annotations: say where it came from.
sed 's/(worker\.in)/(pyproject.toml [worker])/; s/-r worker\.in/pyproject.toml [worker]/' "$tmp/worker.lock" >"$OUT"
echo "lock: $OUT ($(grep -c '^[a-z0-9]' "$OUT") packages)"
