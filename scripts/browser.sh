#!/usr/bin/env bash
# Makes sure the browser tests can run: Debian's headless-capable `chromium` (and CJK fonts, so screenshots
# show Chinese) installed from Debian's packages when missing. Playwright for Python drives that binary
# (it never downloads its own browsers: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD). Non-interactive; needs root to install.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1 \
  || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "browser tests need ${need[*]} (apt-get install -y ${need[*]}); run as root to install" >&2
    exit 0  # the browser tests skip themselves without chromium
  fi
  echo "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  for attempt in 1 2 3; do  # another apt may hold the lock
    apt-get update -qq </dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null \
      && break
    sleep 10
  done
fi
command -v chromium >/dev/null 2>&1
