# gdb-multiarch script (scripts/el2-step-profile.sh): single-steps one trap of the EL2 run from
# the lower-EL synchronous vector to the first instruction outside KCore's image (back in EL1),
# writing the address of every instruction executed, one per line, to $PROF_OUT.
# gdb's own single-step of an LL/SC sequence (and of LDAR, which it takes for one) runs away,
# so those instructions are stepped with a temporary breakpoint after them instead.
import gdb, os, struct

cond = os.environ["PROF_COND"]
skip = int(os.environ.get("PROF_SKIP", "5"))
out = os.environ["PROF_OUT"]
gdb.execute("set language c")
gdb.execute("set pagination off")
vec = int(gdb.parse_and_eval("(unsigned long)&el2_vectors"))
image = tuple(
    int(gdb.parse_and_eval("(unsigned long)&%s" % n)) for n in ("__image_start", "__image_end")
)
gdb.execute("target remote :%s" % os.environ.get("PROF_PORT", "1234"))
gdb.execute("break *0x%x if %s" % (vec + 0x400, cond))
gdb.execute("ignore 1 %d" % skip)
gdb.execute("continue")
gdb.execute("delete")
inf = gdb.selected_inferior()


def word(a):
    return struct.unpack("<I", bytes(inf.read_memory(a, 4)))[0]


def run_to(a):
    gdb.execute("tbreak *0x%x" % a, to_string=True)
    gdb.execute("continue", to_string=True)


pcs = []
while len(pcs) < 100000:
    pc = int(gdb.parse_and_eval("(unsigned long)$pc"))
    if not image[0] <= pc < image[1]:
        break
    w = word(pc)
    if (w & 0x3FC00000) == 0x08400000:
        # A load-exclusive: the sequence to its store-exclusive and the branch after it, once
        # (a lone CPU's store succeeds), counted as straight-line code.
        a = pc
        while (word(a) & 0x3FC00000) != 0x08000000:
            pcs.append(a)
            a += 4
        pcs += [a, a + 4]
        run_to(a + 8)
        continue
    pcs.append(pc)
    if (w & 0x3F400000) == 0x08400000:
        run_to(pc + 4)  # LDAR*
    else:
        gdb.execute("stepi", to_string=True)
with open(out, "w") as f:
    f.writelines("%x\n" % p for p in pcs)
gdb.execute("kill")
