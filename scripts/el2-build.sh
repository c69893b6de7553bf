#!/usr/bin/env bash
# Builds the EL2 workspace (el2/: kcore for aarch64-unknown-none-softfloat) with Debian's
# rustc-web/cargo-web and build-std (shared/design/el2-toolchain.md). Installs the Debian
# packages it needs when they are missing, visibly. Nothing here downloads a toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in rustc-web cargo-web rust-web-src; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "el2-build: installing from Debian: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    $sudo_cmd apt-get install -y -q --no-install-recommends "${need[@]}"
fi
cd el2
# rust-toolchain.toml selects /usr (Debian's rustc) in this folder only. The default target
# (.cargo/config.toml) is the soft-float one EL2 code should use; the hard-float target is
# built too, so the core is known to compile for both.
for target in aarch64-unknown-none-softfloat aarch64-unknown-none; do
    echo "el2-build: $(/usr/bin/rustc --version) for $target"
    env -u CARGO -u RUSTC -u RUSTDOC -u RUSTUP_TOOLCHAIN -u CARGO_TARGET_DIR cargo build --release --target "$target"
    ls -l "target/$target/release/libcorevisor_el2.rlib"
done
