//! `corevisor layout`: the map of KCore's RAM region for a machine (docs/kcore-memory.md).

use corevisor_check::engine::{kcore_layout, ModelMachine};
use corevisor_kcore::consts::PAGE_SIZE;
use corevisor_kcore::layout::PERCPU_BYTES;
use corevisor_sim::scenario::Scenario;
use corevisor_spec::profile::ProfileKind;

fn kib(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", b / 1024)
    }
}

/// The region map of `sc`'s machine (or the default one) under `kind`, one slot per line.
pub fn map(sc: &Scenario, kind: Option<ProfileKind>) -> Result<String, String> {
    let m = ModelMachine::for_scenario(sc, kind).map_err(|e| e.0)?;
    let l = kcore_layout(&m.profile, &m.machine).map_err(|e| format!("{e:?}"))?;
    let ram_pages = (l.ram_end - l.ram_base) / PAGE_SIZE;
    let mut out = format!(
        "profile {}: RAM {:#x}..{:#x} ({}, {} pages), {} CPUs\n\
         KCore's region {:#x}..{:#x} ({}), owned by KCore from boot\n",
        m.profile.name(),
        l.ram_base,
        l.ram_end,
        kib(l.ram_end - l.ram_base),
        ram_pages,
        m.machine.cpus,
        l.kcore_base,
        l.ram_end,
        kib(l.ram_end - l.kcore_base),
    );
    let slots = [
        (
            "image: code, VM records, shadow contexts, export tags",
            l.image_base,
            l.percpu_base,
        ),
        (
            "per-CPU areas (trap frame, EL2 stack)",
            l.percpu_base,
            l.meta_base,
        ),
        (
            "page metadata (8 bytes per RAM page)",
            l.meta_base,
            l.pt.pt_base,
        ),
        (
            "stage-2 table pools (17 principals)",
            l.pt.pt_base,
            l.smmu_base,
        ),
        ("SMMU table pool", l.smmu_base, l.end),
        ("free", l.end, l.ram_end),
    ];
    for (what, from, to) in slots {
        out += &format!(
            "  {from:#012x}..{to:#012x} {:>10}  {what}\n",
            kib(to - from)
        );
    }
    out += &format!(
        "per CPU: {}; per GiB of RAM: {} of metadata\n",
        kib(PERCPU_BYTES),
        kib(8 * (1 << 30) / PAGE_SIZE)
    );
    Ok(out)
}
