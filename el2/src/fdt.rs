//! Just enough of a flattened device tree (Devicetree Specification v0.4, chapter 5) to
//! check the machine: the RAM range of `/memory` and the number of `/cpus/cpu@*` nodes.
//! Reads through `hw::phys`, word by word: the tree is in host RAM, read once at boot
//! before the host runs.

use crate::hw::phys;

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// What KCore needs to know of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    pub ram_base: u64,
    pub ram_size: u64,
    pub cpus: usize,
}

struct Blob {
    base: u64,
    size: u64,
}

impl Blob {
    fn be32(&self, off: u64) -> Option<u32> {
        if !off.is_multiple_of(4) || off + 4 > self.size {
            return None;
        }
        Some(u32::from_be(phys::read32(self.base + off)))
    }

    fn byte(&self, off: u64) -> Option<u8> {
        let w = self.be32(off & !3)?;
        Some(w.to_be_bytes()[(off & 3) as usize])
    }

    /// Whether the NUL-terminated string at `off` starts with `prefix` (and is `prefix`
    /// exactly, or continues with '@', when `node` is set).
    fn name_is(&self, off: u64, prefix: &[u8], node: bool) -> bool {
        for (i, &c) in prefix.iter().enumerate() {
            if self.byte(off + i as u64) != Some(c) {
                return false;
            }
        }
        let next = self.byte(off + prefix.len() as u64);
        next == Some(0) || (node && next == Some(b'@'))
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
}

/// Reads the tree at `pa` (`None`: no tree there, or not one this reader understands).
pub fn read(pa: u64) -> Option<Machine> {
    if !pa.is_multiple_of(8) || !phys::is_raw(pa, 40) {
        return None;
    }
    let hdr = Blob { base: pa, size: 40 };
    if hdr.be32(0)? != MAGIC {
        return None;
    }
    let size = hdr.be32(4)? as u64;
    if !phys::is_raw(pa, size) {
        return None;
    }
    let b = Blob { base: pa, size };
    let structs = b.be32(8)? as u64;
    let strings = b.be32(12)? as u64;
    let mut off = structs;
    let mut depth = 0u32;
    // The node being read at depth 1: 1 = /memory, 2 = /cpus.
    let mut in_node = 0u32;
    let mut m = Machine {
        ram_base: 0,
        ram_size: 0,
        cpus: 0,
    };
    loop {
        let tok = b.be32(off)?;
        off += 4;
        match tok {
            BEGIN_NODE => {
                depth += 1;
                if depth == 2 {
                    in_node = if b.name_is(off, b"memory", true) {
                        1
                    } else if b.name_is(off, b"cpus", true) {
                        2
                    } else {
                        0
                    };
                }
                if depth == 3 && in_node == 2 && b.name_is(off, b"cpu", true) {
                    m.cpus += 1;
                }
                off = b.skip_str(off)?;
            }
            END_NODE => depth = depth.checked_sub(1)?,
            PROP => {
                let len = b.be32(off)? as u64;
                let name = b.be32(off + 4)? as u64;
                let val = off + 8;
                // /memory's reg with #address-cells = #size-cells = 2 (virt's root).
                if depth == 2
                    && in_node == 1
                    && len >= 16
                    && b.name_is(strings + name, b"reg", false)
                {
                    let w = |i: u64| b.be32(val + 4 * i).map(u64::from);
                    m.ram_base = (w(0)? << 32) | w(1)?;
                    m.ram_size = (w(2)? << 32) | w(3)?;
                }
                off = (val + len + 3) & !3;
            }
            NOP => {}
            END => return Some(m),
            _ => return None,
        }
    }
}
