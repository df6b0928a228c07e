#!/usr/bin/env bash
# The second command: the whole test suite, against the real PostgreSQL and Redis on this machine.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt || exit 1
bash scripts/services.sh || exit 1
# Headless Chromium for the browser tests (Debian's package; Playwright never downloads its own).
bash scripts/browser.sh || echo "chromium is not available: the browser tests will be skipped" >&2
.venv/bin/python -m pytest "$@"
status=$?
if [ $status -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $status
