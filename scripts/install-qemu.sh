#!/usr/bin/env bash
# Installs qemu-system-aarch64 (Debian's qemu-system-arm) when it is missing, visibly.
# QEMU comes from bookworm-backports: bookworm's 7.2 would remove the machine's qemu-utils
# 10.0 (shared/design/el2-toolchain.md §7), and 10.0 is what the EL2 run was brought up on.
# The backports source reuses the mirror URI of the machine's own debian.sources.
set -euo pipefail
if command -v qemu-system-aarch64 >/dev/null 2>&1; then
    exit 0
fi
echo "install-qemu: qemu-system-aarch64 missing; installing qemu-system-arm from bookworm-backports"
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=""
[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
bpo=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -e "$bpo" ]; then
    uri=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" | $sudo_cmd tee "$bpo" >/dev/null
    echo "install-qemu: added $bpo ($uri)"
fi
$sudo_cmd apt-get update -q
$sudo_cmd apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-arm
qemu-system-aarch64 --version | head -1
