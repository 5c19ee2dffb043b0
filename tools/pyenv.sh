#!/usr/bin/env bash
# Creates, or refreshes, the Python virtual environment the cross-checks in tests/python run
# in, with the packages of tools/requirements-test.txt.
#   tools/pyenv.sh build/pyenv            # then: build/pyenv/bin/python tests/python/...
#   PYTHON=python3.11 tools/pyenv.sh DIR  # choose the interpreter (default python3)
# Re-running is cheap: pip runs again only when the requirements file changed since the
# last successful install (a stamp in DIR records its checksum), or the venv is broken.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:?usage: tools/pyenv.sh VENV_DIR}"
req="$here/requirements-test.txt"
python="${PYTHON:-python3}"
stamp="$venv/.ssm-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$venv"
  "$python" -m venv "$venv" || {
    echo "pyenv: '$python -m venv' failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
echo "pyenv: $venv ready ($("$venv/bin/python" --version 2>&1))"
