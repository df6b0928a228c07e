#!/usr/bin/env bash
# Creates .venv and installs the Python dependencies (idempotent; quick when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."
req=${1:-requirements.txt}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1  # the browser tests drive Debian's chromium (scripts/browser.sh)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements*.txt | sha1sum | cut -c1-12)-$(basename "$req")"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r "$req"
  touch "$stamp"
fi
