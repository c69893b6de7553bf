//! Just enough of a flattened device tree (Devicetree Specification v0.4, chapter 5) for
//! KCore to take the machine from QEMU and hand the host its own view of it.
//!
//! * [`read`]: RAM (`/memory`), the CPUs and their MPIDRs (`/cpus/cpu@*`), and every device
//!   range the host may map: each root node's `reg` (the GIC's distributor and CPU interface
//!   only: its hypervisor interfaces are EL2's), the `reg` of nodes under an identity-mapped
//!   root node (the GICv2m frame), and a PCI host's `ranges`; not KCore's UART.
//! * [`write_host`]: the host's tree: QEMU's, with `/memory` ending where KCore's region
//!   starts, KCore's UART node and its alias gone, and (for a Linux host) `/chosen`'s
//!   `bootargs` and `linux,initrd-{start,end}`.
//!
//! Reads and writes through [`Mem`] (at EL2: `hw::phys`, word by word; the trees are in host
//! RAM, used once at boot before the host runs). Malformed trees are refused with a reason,
//! never a panic (`xtask/tests/host_device_tree.rs` mutates QEMU's tree at random).
#![no_std]
#![forbid(unsafe_code)]

/// Physical memory as the reader and writer see it.
pub trait Mem {
    /// The 32-bit word at `pa` (4-byte aligned) as a little-endian load gives it.
    fn read32(&self, pa: u64) -> u32;
    /// The 64-bit word at `pa` (8-byte aligned), little-endian.
    fn read64(&self, pa: u64) -> u64;
    /// Stores a 64-bit word at `pa` (8-byte aligned), little-endian.
    fn write64(&self, pa: u64, v: u64);
    /// Whether `[pa, pa + len)` may be read and written.
    fn usable(&self, pa: u64, len: u64) -> bool;
}

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Header bytes (version 17).
const HEADER: u64 = 40;
/// Most CPUs and device ranges KCore keeps.
pub const MAX_CPUS: usize = 8;
pub const MAX_RANGES: usize = 16;

/// What KCore needs to know of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    pub ram_base: u64,
    pub ram_size: u64,
    pub cpus: usize,
    /// The MPIDR (affinity fields) of each CPU, in the tree's order.
    pub mpidr: [u64; MAX_CPUS],
    /// The host's device ranges, page-aligned, sorted and merged.
    pub mmio: [(u64, u64); MAX_RANGES],
    pub mmio_num: usize,
}

/// A Linux host's boot parameters (arm64 booting.rst): its command line (`cmdline_len`
/// bytes at `cmdline`, in RAM) and its initramfs `[initrd_start, initrd_end)`.
#[derive(Clone, Copy, Debug)]
pub struct LinuxBoot {
    pub cmdline: u64,
    pub cmdline_len: u64,
    pub initrd_start: u64,
    pub initrd_end: u64,
}

struct Blob<'m, M: Mem> {
    mem: &'m M,
    base: u64,
    size: u64,
}

impl<M: Mem> Blob<'_, M> {
    fn be32(&self, off: u64) -> Option<u32> {
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.size {
            return None;
        }
        Some(u32::from_be(self.mem.read32(self.base + off)))
    }

    fn byte(&self, off: u64) -> Option<u8> {
        let w = self.be32(off & !3)?;
        Some(w.to_be_bytes()[(off & 3) as usize])
    }

    /// Whether the NUL-terminated string at `off` is `s` (or, with `node`, `s@...`).
    fn name_is(&self, off: u64, s: &[u8], node: bool) -> bool {
        for (i, &c) in s.iter().enumerate() {
            if self.byte(off + i as u64) != Some(c) {
                return false;
            }
        }
        let next = self.byte(off + s.len() as u64);
        next == Some(0) || (node && next == Some(b'@'))
    }

    /// Whether the node name at `off` has unit address `addr` (lower-case hex, `@addr`).
    fn unit_is(&self, mut off: u64, addr: u64) -> bool {
        while let Some(c) = self.byte(off) {
            match c {
                0 => return false,
                b'@' => break,
                _ => off += 1,
            }
        }
        let mut digits = [0u8; 16];
        let mut n = 0;
        let mut a = addr;
        loop {
            digits[n] = b"0123456789abcdef"[(a & 15) as usize];
            n += 1;
            a >>= 4;
            if a == 0 {
                break;
            }
        }
        (0..n).all(|i| self.byte(off + 1 + i as u64) == Some(digits[n - 1 - i]))
            && self.byte(off + 1 + n as u64) == Some(0)
    }

    /// Offset just past the NUL-terminated string at `off`, 4-byte aligned.
    fn skip_str(&self, mut off: u64) -> Option<u64> {
        loop {
            if self.byte(off)? == 0 {
                return Some((off + 4) & !3);
            }
            off += 1;
        }
    }

    /// The `i`-th big-endian 64-bit pair of cells at `val`.
    fn cells2(&self, val: u64, i: u64) -> Option<u64> {
        let hi = self.be32(val + 8 * i)? as u64;
        Some((hi << 32) | self.be32(val + 8 * i + 4)? as u64)
    }

    /// The string property value at `val` (`len` bytes) contains `s` as one of its strings.
    fn has_string(&self, val: u64, len: u64, s: &[u8]) -> bool {
        let mut off = val;
        while off < val + len {
            if self.name_is(off, s, false) {
                return true;
            }
            while self.byte(off).is_some_and(|c| c != 0) {
                off += 1;
            }
            off += 1;
        }
        false
    }
}

/// The tree at `pa`, its header checked (`None`: no tree there, or not one this reader
/// understands).
fn open<M: Mem>(mem: &M, pa: u64) -> Option<(Blob<'_, M>, u64, u64)> {
    if !pa.is_multiple_of(8) || !mem.usable(pa, HEADER) {
        return None;
    }
    let hdr = Blob {
        mem,
        base: pa,
        size: HEADER,
    };
    if hdr.be32(0)? != MAGIC || hdr.be32(20)? < 16 {
        return None;
    }
    let size = hdr.be32(4)? as u64;
    if size < HEADER || !mem.usable(pa, size) {
        return None;
    }
    let b = Blob {
        mem,
        base: pa,
        size,
    };
    let structs = b.be32(8)? as u64;
    let strings = b.be32(12)? as u64;
    Some((b, structs, strings))
}

/// One token of the structure block.
enum Tok {
    Begin { name: u64 },
    End,
    Prop { name: u64, val: u64, len: u64 },
    Nop,
    Finish,
}

/// The token at `off` and the offset after it.
fn token<M: Mem>(b: &Blob<'_, M>, strings: u64, off: u64) -> Option<(Tok, u64)> {
    let tok = b.be32(off)?;
    let off = off + 4;
    Some(match tok {
        BEGIN_NODE => (Tok::Begin { name: off }, b.skip_str(off)?),
        END_NODE => (Tok::End, off),
        PROP => {
            let len = b.be32(off)? as u64;
            let name = strings.checked_add(b.be32(off + 4)? as u64)?;
            let val = off + 8;
            if val.checked_add(len)? > b.size {
                return None;
            }
            (Tok::Prop { name, val, len }, (val + len + 3) & !3)
        }
        NOP => (Tok::Nop, off),
        END => (Tok::Finish, off),
        _ => return None,
    })
}

/// What a root node says of itself, gathered until its end.
#[derive(Clone, Copy, Default)]
struct Node {
    kind: Kind,
    /// `reg`: value offset and length.
    reg: Option<(u64, u64)>,
    /// `ranges`: value offset and length (0: identity).
    ranges: Option<(u64, u64)>,
    gic: bool,
    /// A GICv3 (`arm,gic-v3`): KCore supports GICv2 only (its reg layout, whose hypervisor
    /// interfaces stay EL2's, is the one this reader knows).
    gic_v3: bool,
    pci: bool,
    kcore_uart: bool,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    Other,
    Memory,
    Cpus,
}

/// Reads the tree at `pa` (`None`: no tree there, or one this reader refuses).
pub fn read<M: Mem>(mem: &M, pa: u64, kcore_uart: u64) -> Option<Machine> {
    let (b, structs, strings) = open(mem, pa)?;
    let mut m = Machine {
        ram_base: 0,
        ram_size: 0,
        cpus: 0,
        mpidr: [0; MAX_CPUS],
        mmio: [(0, 0); MAX_RANGES],
        mmio_num: 0,
    };
    let mut ranges = Ranges::default();
    let mut off = structs;
    let mut depth = 0u32;
    let mut node = Node::default();
    let mut cpu_cells = 1u32;
    let (mut root_acells, mut root_scells) = (0, 0);
    loop {
        let (tok, next) = token(&b, strings, off)?;
        off = next;
        match tok {
            Tok::Begin { name } => {
                depth += 1;
                if depth == 2 {
                    node = Node {
                        kind: if b.name_is(name, b"memory", true) {
                            Kind::Memory
                        } else if b.name_is(name, b"cpus", true) {
                            Kind::Cpus
                        } else {
                            Kind::Other
                        },
                        kcore_uart: b.unit_is(name, kcore_uart),
                        ..Node::default()
                    };
                }
                if depth == 3 && node.kind == Kind::Cpus && b.name_is(name, b"cpu", true) {
                    if m.cpus == MAX_CPUS {
                        return None;
                    }
                    m.cpus += 1;
                }
            }
            Tok::End => {
                if depth == 2 && node.gic_v3 {
                    return None;
                }
                if depth == 2 && node.kind == Kind::Other && !node.kcore_uart {
                    node_ranges(&b, &node, &mut ranges)?;
                }
                depth = depth.checked_sub(1)?;
            }
            Tok::Prop { name, val, len } => {
                let is = |s: &[u8]| b.name_is(name, s, false);
                match depth {
                    1 if is(b"#address-cells") => root_acells = b.be32(val)?,
                    1 if is(b"#size-cells") => root_scells = b.be32(val)?,
                    2 if is(b"reg") => node.reg = Some((val, len)),
                    2 if is(b"ranges") => node.ranges = Some((val, len)),
                    2 if is(b"compatible") => {
                        node.gic = b.has_string(val, len, b"arm,cortex-a15-gic")
                            || b.has_string(val, len, b"arm,gic-400");
                        node.gic_v3 = b.has_string(val, len, b"arm,gic-v3");
                    }
                    2 if is(b"device_type") => node.pci = b.name_is(val, b"pci", false),
                    2 if node.kind == Kind::Cpus && is(b"#address-cells") => {
                        cpu_cells = b.be32(val)?
                    }
                    3 if node.kind == Kind::Cpus && is(b"reg") && m.cpus > 0 => {
                        m.mpidr[m.cpus - 1] = if cpu_cells == 2 {
                            b.cells2(val, 0)?
                        } else {
                            b.be32(val)? as u64
                        };
                    }
                    // A device under an identity-mapped root node (the GICv2m frame).
                    3 if node.kind == Kind::Other
                        && !node.kcore_uart
                        && node.ranges.is_some_and(|(_, l)| l == 0)
                        && is(b"reg") =>
                    {
                        for i in 0..len / 16 {
                            ranges.add(b.cells2(val, 2 * i)?, b.cells2(val, 2 * i + 1)?)?;
                        }
                    }
                    _ => {}
                }
                if depth == 2 && node.kind == Kind::Memory && is(b"reg") && len >= 16 {
                    m.ram_base = b.cells2(val, 0)?;
                    m.ram_size = b.cells2(val, 1)?;
                }
            }
            Tok::Nop => {}
            Tok::Finish => break,
        }
    }
    // Every address and size this reader takes is two cells (QEMU `virt`'s root).
    if root_acells != 2 || root_scells != 2 {
        return None;
    }
    m.mmio_num = ranges.merged(&mut m.mmio)?;
    Some(m)
}

/// The host's ranges of one root node: its `reg` (a GIC's first two: the distributor and the
/// CPU interface; its hypervisor control and virtual CPU interfaces stay EL2's), and a PCI
/// host's `ranges` (child address 3 cells, parent 2, size 2).
fn node_ranges<M: Mem>(b: &Blob<'_, M>, n: &Node, out: &mut Ranges) -> Option<()> {
    if let Some((val, len)) = n.reg {
        let count = if n.gic { 2.min(len / 16) } else { len / 16 };
        for i in 0..count {
            out.add(b.cells2(val, 2 * i)?, b.cells2(val, 2 * i + 1)?)?;
        }
    }
    if let (true, Some((val, len))) = (n.pci, n.ranges) {
        for i in 0..len / 28 {
            let e = val + 28 * i;
            let parent = b.cells2(e + 12, 0)?;
            let size = b.cells2(e + 20, 0)?;
            out.add(parent, size)?;
        }
    }
    Some(())
}

/// Device ranges as they are found, before merging.
struct Ranges {
    r: [(u64, u64); 64],
    n: usize,
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges {
            r: [(0, 0); 64],
            n: 0,
        }
    }
}

impl Ranges {
    /// Adds `[base, base + size)`, widened to whole pages, less page 0 (kcore's model
    /// never gives page 0 to anyone: `virt`'s flash keeps its first page).
    fn add(&mut self, base: u64, size: u64) -> Option<()> {
        let start = (base & !0xFFF).max(0x1000);
        let end = base.checked_add(size)?.checked_add(0xFFF)? & !0xFFF;
        if end <= start {
            return Some(());
        }
        *self.r.get_mut(self.n)? = (start, end);
        self.n += 1;
        Some(())
    }

    /// Sorted, overlapping or touching ranges merged, as (base, size) into `out`; the count
    /// (`None`: more than [`MAX_RANGES`] separate ranges).
    fn merged(&mut self, out: &mut [(u64, u64); MAX_RANGES]) -> Option<usize> {
        let r = &mut self.r[..self.n];
        r.sort_unstable();
        let mut n = 0;
        for &(s, e) in r.iter() {
            if n > 0 && s <= out[n - 1].0 + out[n - 1].1 {
                let base = out[n - 1].0;
                out[n - 1].1 = out[n - 1].1.max(e - base);
            } else if n < MAX_RANGES {
                out[n] = (s, e - s);
                n += 1;
            } else {
                return None;
            }
        }
        Some(n)
    }
}

/// Where the words of the host's tree go: counted first, then written.
trait Sink {
    fn word(&mut self, w: u32);
}

struct Count(u64);

impl Sink for Count {
    fn word(&mut self, _: u32) {
        self.0 += 4;
    }
}

/// Writes big-endian words to physical memory from `base`, eight bytes at a time.
struct Write<'m, M: Mem> {
    mem: &'m M,
    base: u64,
    off: u64,
    half: Option<u32>,
}

impl<M: Mem> Sink for Write<'_, M> {
    fn word(&mut self, w: u32) {
        match self.half.take() {
            None => self.half = Some(w),
            Some(first) => {
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&first.to_be_bytes());
                b[4..].copy_from_slice(&w.to_be_bytes());
                self.mem
                    .write64(self.base + self.off, u64::from_le_bytes(b));
                self.off += 8;
            }
        }
    }
}

impl<M: Mem> Write<'_, M> {
    fn finish(mut self) {
        if self.half.is_some() {
            self.word(0);
        }
    }
}

/// The strings KCore adds to the strings block (after QEMU's), NUL-separated.
const NEW_STRINGS: &[u8] = b"bootargs\0linux,initrd-start\0linux,initrd-end\0";
const S_BOOTARGS: u64 = 0;
const S_INITRD_START: u64 = 9;
const S_INITRD_END: u64 = 28;

/// Writes the host's tree (read from QEMU's at `src`) to `dst`, at most `max` bytes; returns
/// its size. `host_ram_end`: where the host's RAM ends (KCore's region starts).
pub fn write_host<M: Mem>(
    mem: &M,
    src: u64,
    dst: u64,
    max: u64,
    host_ram_end: u64,
    kcore_uart: u64,
    linux: Option<LinuxBoot>,
) -> Result<u64, &'static str> {
    let (b, structs, strings) = open(mem, src).ok_or("no device tree this reader understands")?;
    if let Some(l) = linux {
        if l.cmdline_len > 4096 || !mem.usable(l.cmdline, l.cmdline_len) {
            return Err("a command line outside usable memory");
        }
    }
    let size_strings = b.be32(32).ok_or("truncated header")? as u64;
    let rsv = b.be32(16).ok_or("truncated header")? as u64;
    let e = Edit {
        b: &b,
        structs,
        strings,
        host_ram_end,
        kcore_uart,
        linux,
    };
    // The memory reservation block: QEMU's entries up to and with the (0, 0) end.
    let mut rsv_words = 0u64;
    loop {
        // One entry: address and size, two cells each.
        let mut any = 0;
        for k in 0..4 {
            any |= b
                .be32(rsv + 4 * (rsv_words + k))
                .ok_or("truncated reservation block")?;
        }
        rsv_words += 4;
        if any == 0 {
            break;
        }
    }
    let mut count = Count(0);
    e.structure(&mut count)
        .ok_or("a device tree KCore cannot edit")?;
    let size_struct = count.0;
    let new_strings = size_strings + NEW_STRINGS.len() as u64;
    let off_rsv = HEADER.next_multiple_of(8);
    let off_struct = off_rsv + 4 * rsv_words;
    let off_strings = off_struct + size_struct;
    let total = (off_strings + new_strings).next_multiple_of(8);
    if total > max || !mem.usable(dst, max) || (dst < src + b.size && src < dst + max) {
        return Err("no room for the host's device tree");
    }
    let mut w = Write {
        mem,
        base: dst,
        off: 0,
        half: None,
    };
    let header = [
        MAGIC,
        total as u32,
        off_struct as u32,
        off_strings as u32,
        off_rsv as u32,
        17,
        16,
        b.be32(28).unwrap_or(0),
        new_strings as u32,
        size_struct as u32,
    ];
    for h in header {
        w.word(h);
    }
    for i in 0..rsv_words {
        w.word(b.be32(rsv + 4 * i).unwrap_or(0));
    }
    e.structure(&mut w)
        .ok_or("a device tree KCore cannot edit")?;
    // Strings: QEMU's, then KCore's, as bytes packed into words.
    let mut bytes = Bytes::default();
    for i in 0..size_strings {
        bytes.push(&mut w, b.byte(strings + i).unwrap_or(0));
    }
    for &c in NEW_STRINGS {
        bytes.push(&mut w, c);
    }
    bytes.flush(&mut w);
    w.finish();
    Ok(total)
}

/// Bytes gathered into big-endian words.
#[derive(Default)]
struct Bytes {
    w: [u8; 4],
    n: usize,
}

impl Bytes {
    fn push(&mut self, s: &mut impl Sink, c: u8) {
        self.w[self.n] = c;
        self.n += 1;
        if self.n == 4 {
            s.word(u32::from_be_bytes(self.w));
            self.n = 0;
        }
    }

    fn flush(&mut self, s: &mut impl Sink) {
        while self.n != 0 {
            self.push(s, 0);
        }
    }
}

/// QEMU's tree and what the host's differs by.
struct Edit<'a, 'm, M: Mem> {
    b: &'a Blob<'m, M>,
    structs: u64,
    strings: u64,
    host_ram_end: u64,
    kcore_uart: u64,
    linux: Option<LinuxBoot>,
}

impl<M: Mem> Edit<'_, '_, M> {
    /// The host's structure block into `s`.
    fn structure(&self, s: &mut impl Sink) -> Option<()> {
        let b = self.b;
        let mut off = self.structs;
        let mut depth = 0u32;
        // Root node being copied: 1 = /memory, 2 = /chosen, 3 = /aliases.
        let mut in_node = 0u32;
        // Depth at which a skipped subtree started (KCore's UART), 0 = none.
        let mut skip = 0u32;
        loop {
            let (tok, next) = token(b, self.strings, off)?;
            let start = off;
            off = next;
            match tok {
                Tok::Begin { name } => {
                    depth += 1;
                    if skip == 0 && depth == 2 && b.unit_is(name, self.kcore_uart) {
                        skip = depth;
                    }
                    // KCore's /chosen properties go at its end, which must come before any
                    // child node (DTSpec 5.4.2): a /chosen with children is refused.
                    if depth == 3 && in_node == 2 && self.linux.is_some() {
                        return None;
                    }
                    if depth == 2 {
                        in_node = if b.name_is(name, b"memory", true) {
                            1
                        } else if b.name_is(name, b"chosen", true) {
                            2
                        } else if b.name_is(name, b"aliases", true) {
                            3
                        } else {
                            0
                        };
                    }
                    if skip == 0 {
                        self.copy(s, start, next);
                    }
                }
                Tok::End => {
                    if skip == 0 {
                        if depth == 2 && in_node == 2 {
                            self.chosen(s);
                        }
                        s.word(END_NODE);
                    } else if depth == skip {
                        skip = 0;
                    }
                    depth = depth.checked_sub(1)?;
                }
                Tok::Prop { name, val, len } => {
                    if skip != 0 {
                        continue;
                    }
                    let is = |n: &[u8]| b.name_is(name, n, false);
                    let at_root_node = depth == 2;
                    if at_root_node && in_node == 1 && is(b"reg") {
                        // /memory: the host's RAM ends where KCore's region begins.
                        let base = b.cells2(val, 0)?;
                        s.word(PROP);
                        s.word(16);
                        s.word(b.be32(start + 8)?);
                        for v in [base, self.host_ram_end.checked_sub(base)?] {
                            s.word((v >> 32) as u32);
                            s.word(v as u32);
                        }
                    } else if at_root_node
                        && in_node == 2
                        && (is(b"bootargs") || is(b"linux,initrd-start") || is(b"linux,initrd-end"))
                        && self.linux.is_some()
                    {
                        // Replaced by KCore's at the end of /chosen.
                    } else if at_root_node && in_node == 3 && self.names_kcore_uart(val, len) {
                        // The alias of KCore's UART.
                    } else {
                        self.copy(s, start, next);
                    }
                }
                Tok::Nop => {}
                Tok::Finish => {
                    s.word(END);
                    return Some(());
                }
            }
        }
    }

    /// Whether the path at `val` names a node whose unit address is KCore's UART.
    fn names_kcore_uart(&self, val: u64, len: u64) -> bool {
        // The path's last component starts after its last '/'.
        let mut last = val;
        for i in 0..len {
            if self.b.byte(val + i) == Some(b'/') {
                last = val + i + 1;
            }
        }
        self.b.unit_is(last, self.kcore_uart)
    }

    /// `/chosen`'s properties for a Linux host.
    fn chosen(&self, s: &mut impl Sink) {
        let Some(l) = self.linux else { return };
        let strings = self.strings_size();
        s.word(PROP);
        s.word(l.cmdline_len as u32 + 1);
        s.word((strings + S_BOOTARGS) as u32);
        let mut bytes = Bytes::default();
        for i in 0..l.cmdline_len {
            let w = self.b.mem.read64((l.cmdline + i) & !7);
            bytes.push(s, (w >> (8 * ((l.cmdline + i) & 7))) as u8);
        }
        bytes.push(s, 0);
        bytes.flush(s);
        for (name, v) in [
            (S_INITRD_START, l.initrd_start),
            (S_INITRD_END, l.initrd_end),
        ] {
            s.word(PROP);
            s.word(8);
            s.word((strings + name) as u32);
            s.word((v >> 32) as u32);
            s.word(v as u32);
        }
    }

    fn strings_size(&self) -> u64 {
        self.b.be32(32).unwrap_or(0) as u64
    }

    /// Copies QEMU's words `[from, to)` of the structure block.
    fn copy(&self, s: &mut impl Sink, from: u64, to: u64) {
        let mut o = from;
        while o < to {
            s.word(self.b.be32(o).unwrap_or(0));
            o += 4;
        }
    }
}
