"""Counts the instructions of a trace from step.py by where they come from (the function each
was inlined from, llvm-symbolizer), in the categories of docs/el2.md ("Where the
instructions go"). Usage: classify.py ADDRESSES ELF"""
import collections
import subprocess
import sys

pcs = [line.strip() for line in open(sys.argv[1])]
uniq = sorted(set(pcs))
out = subprocess.run(
    ["llvm-symbolizer", "--obj=" + sys.argv[2], "--inlining", "--functions=linkage", "--demangle"],
    input="".join("0x%s\n" % p for p in uniq),
    capture_output=True,
    text=True,
    check=True,
).stdout
chain = {p: " | ".join(b.split("\n")) for p, b in zip(uniq, out.strip("\n").split("\n\n"))}


def category(c):
    # Line 0: code the compiler merged from several places (a shared tail, a result's
    # discriminant): counted by the functions it lies in, not by that location's file.
    c = " | ".join("?:0:0" if ":0:" in x else x for x in c.split(" | "))
    if c.startswith(("??", "el2_vectors", "el2_return_lower")):
        return "vector (save, restore, eret)"
    if c.startswith("memcpy"):
        return "memcpy of register files"
    if "copy_gprs" in c:
        return "kcore: x0..x30 into / out of the shadow"
    if "locked.rs" in c or "Locked<" in c or ("state::Core" in c and "::take" in c):
        return "kcore: CTXT lock (ticket, halt check, release)"
    if any(k in c for k in ("trace.rs", "src/trace/", "::trace::", "trace_state", "vm_of_call", "describe", "exit_action")):
        return "trace record"
    if "hw/lock.rs" in c or "kcore_glue::Shared" in c or "TicketLock" in c:
        return "glue lock"
    if "::finish" in c or "clean_dirty" in c:
        return "cache bookkeeping (finish)"
    if "corevisor_kcore" in c or "crates/kcore" in c:
        return "kcore: admission, halt checks, dispatch"
    if c.startswith("el2_lower_trap") and "entry.rs" in c.split(" | ")[1]:
        return "Rust entry (prologue, epilogue)"
    return "routing and glue"


counts = collections.Counter(category(chain[p]) for p in pcs)
print("%5d  total" % len(pcs))
for k, v in counts.most_common():
    print("%5d  %s" % (v, k))
