#!/usr/bin/env bash
# Builds the EL2 workspace (el2/): the KCore image twice, traced (kcore-el2, the `trace`
# feature: the checked build) and production (kcore-el2-prod: no trace), the EL1 host stub
# and the guest, with Debian's rustc-web/cargo-web and build-std (shared/design/el2-toolchain.md),
# offline: the crypto crates are vendored in el2/vendor, build-std's in Debian's
# rust-web-src; both are linked into el2/target/vendor-merged, the one directory source
# .cargo/config.toml names. Installs the Debian packages it needs when missing, visibly.
# Nothing here downloads a toolchain or a crate.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in rustc-web cargo-web rust-web-src lld-22; do
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
debian=/usr/lib/rustlib/src/rust/library/vendor
merged=target/vendor-merged
rm -rf "$merged"
mkdir -p "$merged"
for d in "$debian"/* vendor/*; do
    name=$(basename "$d")
    # Same crate and version in both sets: one copy (they are the same release).
    [ -e "$merged/$name" ] || ln -s "$(realpath "$d")" "$merged/$name"
done
# rust-toolchain.toml selects /usr (Debian's rustc) in this folder only.
build() {
    env -u CARGO -u RUSTC -u RUSTDOC -u RUSTUP_TOOLCHAIN -u CARGO_TARGET_DIR \
        cargo build --release --offline --locked "$@"
}
echo "el2-build: $(/usr/bin/rustc --version)"
rel=target/aarch64-unknown-none-softfloat/release
# EL2_MUTANT=name: only the traced image with kcore's named fault planted (the `mutants`
# feature; `cargo xtask qemu --mutants`), kept as kcore-el2-mutant; then the traced image
# back at release/kcore-el2.
if [ -n "${EL2_MUTANT:-}" ]; then
    COREVISOR_MUTANT="$EL2_MUTANT" build -p corevisor-el2 --target aarch64-unknown-none-softfloat --features mutants
    cp "$rel/kcore-el2" "$rel/kcore-el2-mutant.tmp"
    mv "$rel/kcore-el2-mutant.tmp" "$rel/kcore-el2-mutant"
    build -p corevisor-el2 --target aarch64-unknown-none-softfloat
    ls -l "$rel/kcore-el2-mutant"
    exit 0
fi
# The production image first (no `trace` feature), kept under its own name: cargo puts
# both builds at release/kcore-el2 (only corevisor-el2 itself is compiled twice).
build -p corevisor-el2 --target aarch64-unknown-none-softfloat --no-default-features
cp "$rel/kcore-el2" "$rel/kcore-el2-prod.tmp"
mv "$rel/kcore-el2-prod.tmp" "$rel/kcore-el2-prod"
build -p corevisor-el2 --target aarch64-unknown-none-softfloat
build -p el2-host-stub --target aarch64-unknown-none-softfloat
build -p el2-guest --target aarch64-unknown-none-softfloat
ls -l "$rel/kcore-el2" "$rel/kcore-el2-prod" "$rel/host-stub" "$rel/guest"
