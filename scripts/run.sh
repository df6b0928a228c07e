#!/usr/bin/env bash
# The first command: set up and run the service on its embedded defaults
# (SQLite under instance/, the in-process Redis stand-in, the demo data, the local WeCom stand-in).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
export FLASK_APP=app
.venv/bin/flask db upgrade
if .venv/bin/flask demo --help >/dev/null 2>&1; then
  .venv/bin/flask demo seed --if-empty
fi
exec .venv/bin/python app.py
