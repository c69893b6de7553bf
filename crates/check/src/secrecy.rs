//! A secrecy oracle that does not trust the seed (issue 20): every value a VM (or a device
//! on one of its banks) stores in a page it owns privately is a secret of that VM, tracked
//! per physical word; a load, instruction fetch or DMA read by any other principal that
//! returns such a word is a leak (`docs/secrecy-oracle.md`).
//!
//! What it reads, and why none of it is the seed's verdict:
//! * the machine's bus: every word a principal's access moved, with who made it
//!   (`Recorded::bus`, filled by the simulator's MMU and SMMU, not by KCore or the model);
//! * KCore's page metadata (`Core::page`) *at the time of the access* (after any fault the
//!   same step served), to decide whether a store is private: owner = the storing VM and
//!   count 0 (never shared) or INVALID (given to its device only). The metadata is the
//!   core's, compared with the model by refinement on every step: a core that lies about it
//!   is caught there, and a seed whose rules let the host in is caught here;
//! * the step itself, for declassification: a GRANT the VM itself made, covering the page,
//!   after which the page is shared (0 < count < INVALID).
//!
//! A tag is a (VM, value) pair on a word: it stands while memory still holds the value the
//! VM stored. Another principal's store over it ends it (a legitimate overwrite, or a
//! tamper if the page is still the VM's private page); a scrub to zero ends it (zero is no
//! one's secret, and a zero store is never tagged); a GRANT by the VM declassifies the page.

use corevisor_kcore::consts::{COREVISOR, HOSTVISOR, INVALID};
use corevisor_kcore::state::Core;
use corevisor_sim::machine::{BusAccess, StepResult};
use corevisor_sim::mem::SimMemory;
use corevisor_sim::scenario::{Action, ShareOp, Step};
use std::collections::HashMap;

/// A word's secret: the VM that stored it privately, and the value it stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub vm: u32,
    pub value: u64,
}

/// The oracle's state: the tags of every word, by frame.
#[derive(Clone, Debug, Default)]
pub struct Secrecy {
    frames: HashMap<u64, HashMap<u64, Tag>>,
}

fn is_vm(v: u32) -> bool {
    (1..COREVISOR).contains(&v)
}

/// "the host", "VM 2's device", ...: who made an access, for the message.
pub fn principal_name(a: &BusAccess) -> String {
    match (a.principal, a.device) {
        (HOSTVISOR, false) => "the host".into(),
        (HOSTVISOR, true) => "the host's device".into(),
        (v, false) => format!("VM {v}"),
        (v, true) => format!("VM {v}'s device"),
    }
}

/// A page the VM `v` owns privately now, by KCore's metadata: never shared (count 0) or
/// given to its device only (count INVALID, SMMU_LPAE_MAP).
fn private_to(core: &Core<SimMemory>, v: u32, pfn: u64) -> bool {
    let p = core.page(pfn);
    p.owner == v && (p.count == 0 || p.count == INVALID)
}

impl Secrecy {
    pub fn new() -> Self {
        Secrecy::default()
    }

    /// The tag on the word at `pa`, if any.
    pub fn tag(&self, pa: u64) -> Option<Tag> {
        self.frames
            .get(&(pa / 4096))?
            .get(&((pa & 4095) / 8))
            .copied()
    }

    /// How many words carry a tag.
    pub fn tagged_words(&self) -> usize {
        self.frames.values().map(HashMap::len).sum()
    }

    fn set(&mut self, pa: u64, tag: Option<Tag>) {
        let (pfn, w) = (pa / 4096, (pa & 4095) / 8);
        match tag {
            Some(t) => {
                self.frames.entry(pfn).or_default().insert(w, t);
            }
            None => {
                if let Some(f) = self.frames.get_mut(&pfn) {
                    f.remove(&w);
                    if f.is_empty() {
                        self.frames.remove(&pfn);
                    }
                }
            }
        }
    }

    /// Judges one step the core machine took (`res`, from the machine's bus) and brings the
    /// tags up to date: every leak (and tamper) found, as a mismatch message. `granter`:
    /// the VM whose vCPU ran on the step's CPU before the step (its GRANT declassifies).
    pub fn judge(
        &mut self,
        core: &Core<SimMemory>,
        st: &Step,
        granter: Option<u32>,
        res: &StepResult,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for a in &res.rec.bus {
            if a.write {
                self.store(core, st, a, &mut out);
            } else {
                self.load(st, a, &mut out);
            }
        }
        if let (
            Action::GuestHvc {
                op: ShareOp::Grant,
                gpa,
                size,
            },
            Some(v),
        ) = (&st.action, granter)
        {
            self.declassify(core, v, *gpa as u64, *size as u64);
        }
        out
    }

    /// A read by a principal other than the word's VM that returns the VM's value: a leak.
    fn load(&self, st: &Step, a: &BusAccess, out: &mut Vec<String>) {
        let Some(t) = self.tag(a.pa) else { return };
        if t.vm != a.principal && t.value == a.value {
            out.push(format!(
                "leak: {} read VM {}'s private word at {:#x} (step {}, value {:#x})",
                principal_name(a),
                t.vm,
                a.pa,
                st.index,
                a.value
            ));
        }
    }

    /// A store: the VM's own into its private page tags the word; any other ends the tag
    /// (reported as a tamper when another principal wrote into the VM's private page).
    fn store(&mut self, core: &Core<SimMemory>, st: &Step, a: &BusAccess, out: &mut Vec<String>) {
        let pfn = a.pa / 4096;
        if let Some(t) = self.tag(a.pa) {
            if t.vm != a.principal && private_to(core, t.vm, pfn) {
                out.push(format!(
                    "tamper: {} wrote VM {}'s private word at {:#x} (step {})",
                    principal_name(a),
                    t.vm,
                    a.pa,
                    st.index
                ));
            }
        }
        let private = is_vm(a.principal) && a.value != 0 && private_to(core, a.principal, pfn);
        let tag = private.then_some(Tag {
            vm: a.principal,
            value: a.value,
        });
        self.set(a.pa, tag);
    }

    /// VM `v`'s GRANT of `[gpa, gpa + size)`: every page of `v` bound to a gfn in the range
    /// that is shared now (0 < count < INVALID) loses its tags. Bounded by the tagged
    /// frames, not by the (principal-chosen) size.
    fn declassify(&mut self, core: &Core<SimMemory>, v: u32, gpa: u64, size: u64) {
        let (lo, hi) = (gpa / 4096, gpa.saturating_add(size).div_ceil(4096));
        self.frames.retain(|&pfn, words| {
            let p = core.page(pfn);
            let shared = p.owner == v && 0 < p.count && p.count < INVALID;
            if shared && (lo..hi.max(lo + 1)).contains(&p.gfn) {
                words.retain(|_, t| t.vm != v);
            }
            !words.is_empty()
        });
    }

    /// Forgets the tags of words in `frames` that no longer hold the value stored (KCore
    /// scrubbed or rewrote them): only the tags' upkeep, since a leak needs the value.
    pub fn prune(&mut self, mem: &SimMemory, frames: impl IntoIterator<Item = u64>) {
        for pfn in frames {
            let Some(words) = self.frames.get_mut(&pfn) else {
                continue;
            };
            let page = mem.page_words(pfn);
            words.retain(|&w, t| page[w as usize] == t.value);
            if words.is_empty() {
                self.frames.remove(&pfn);
            }
        }
    }
}
