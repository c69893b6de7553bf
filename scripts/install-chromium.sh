#!/usr/bin/env bash
# The report test renders the HTML report in a real headless browser: Debian's chromium.
# Installs it when it is missing, visibly (as scripts/el2-build.sh does its toolchain).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "install-chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
    exit 0
fi
echo "install-chromium: installing Debian's chromium (for the report's browser test)"
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=""
[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
$sudo_cmd apt-get update -q
$sudo_cmd apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
