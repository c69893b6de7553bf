#!/usr/bin/env bash
# Where the instructions of one EL2 trap go (docs/el2.md, "Where the instructions go"): boots
# the image `cargo xtask qemu` built under gdb (QEMU -s -S, -icount shift=0), single-steps one
# trap from the vector to the return to EL1 and counts its instructions by origin.
#   scripts/el2-step-profile.sh null     # a null hypercall (x0 = 7) of the measured loop
#   scripts/el2-step-profile.sh switch   # a trapped ACTLR_EL1 read of the world-switch loop
# The traced image by default; KERNEL=el2/target/aarch64-unknown-none-softfloat/release/kcore-el2-prod
# for the production image (no trace); PORT= for another gdb port than 1234.
# Needs gdb-multiarch and llvm-symbolizer; writes target/qemu/step-*.txt (one address a line).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-null}" in
    null) cond='$x0 == 7' ;;
    switch) cond='($ESR_EL2 >> 26) == 0x18' ;;
    *) echo "usage: $0 [null|switch]" >&2; exit 2 ;;
esac
bin=el2/target/aarch64-unknown-none-softfloat/release
kernel=${KERNEL:-$bin/kcore-el2}
out=target/qemu/step-${1:-null}.txt
port=${PORT:-1234}
qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a57 -smp 2 -m 1G -nographic \
    -nic none -no-reboot -icount shift=0 -gdb "tcp::$port" -S \
    -kernel "$kernel" -device loader,file="$bin/host-stub" \
    -device loader,file=target/qemu/guest.bundle,addr=0x41000000,force-raw=on \
    >target/qemu/step-console.log 2>&1 &
qemu=$!
trap 'kill $qemu 2>/dev/null || true' EXIT
sleep 1
PROF_COND="$cond" PROF_OUT="$out" PROF_PORT="$port" \
    gdb-multiarch -batch -x scripts/el2-step-profile/step.py "$kernel" >target/qemu/step-gdb.log 2>&1
python3 scripts/el2-step-profile/classify.py "$out" "$kernel"
