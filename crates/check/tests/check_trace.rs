//! `check-trace` on a real trace: the first 103 entries of a `cargo xtask qemu` run on
//! `-cpu cortex-a57` (boot, VM 1 registered, its image verified, both vCPUs run on two CPUs
//! with a stage-2 fault each, GRANT/REVOKE, WFI, power-off, reclaim, the host reading the
//! reclaimed pages), and the same trace with faults planted: each must be reported at the
//! entry where it was planted, naming the field.

use corevisor_check::trace_check::{check, Failure, Malformed, Mismatch};
use serde_json::Value;

const EXCERPT: &str = include_str!("data/qemu-trace-excerpt.jsonl");

fn lines() -> Vec<Value> {
    EXCERPT
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture line is JSON"))
        .collect()
}

fn text(v: &[Value]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

/// The line of entry `seq` (the header is line 0).
fn at(v: &[Value], seq: u64) -> usize {
    v.iter()
        .position(|l| l["seq"].as_u64() == Some(seq))
        .expect("entry in the fixture")
}

fn mismatch(v: &[Value]) -> Mismatch {
    match check(&text(v)) {
        Err(Failure::Mismatch(m)) => *m,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

fn malformed(t: &str) -> Malformed {
    match check(t) {
        Err(Failure::Malformed(m)) => m,
        other => panic!("expected a malformed trace, got {other:?}"),
    }
}

/// Removes entry `seq`; with `renumber`, the later entries and the final count close the gap.
fn drop_entry(v: &[Value], seq: u64, renumber: bool) -> Vec<Value> {
    let mut out: Vec<Value> = v
        .iter()
        .filter(|l| l["seq"].as_u64() != Some(seq))
        .cloned()
        .collect();
    if renumber {
        for l in &mut out {
            if let Some(s) = l["seq"].as_u64().filter(|&s| s > seq) {
                l["seq"] = Value::from(s - 1);
            }
            if let Some(n) = l["final"]["entries"].as_u64() {
                l["final"]["entries"] = Value::from(n - 1);
            }
        }
    }
    out
}

#[test]
fn the_real_excerpt_agrees_at_every_entry() {
    let s = check(EXCERPT).expect("the excerpt agrees with the model");
    assert_eq!(s.entries, 103);
    // Distinct: all but the repeated entries (the same call or fault, seq, CPU and register
    // values aside).
    assert_eq!(s.distinct, 96);
    assert!(!s.halted);
    let line = s.to_string();
    assert!(
        line.starts_with("check-trace: 103 steps, 0 mismatches"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    // Every entry point is exercised, with pages, VM records and untrusted values.
    assert!(s.by_entry.iter().all(|(_, n)| *n > 0), "{:?}", s.by_entry);
    assert!(
        s.pages > 1000 && s.leaves > 1500 && s.vms > 10 && s.values > 500,
        "{s:?}"
    );
}

#[test]
fn a_changed_x0_is_reported_at_its_entry() {
    let mut v = lines();
    // Entry 29: REGISTER_KVM gives the host VM 1.
    let k = at(&v, 29);
    assert_eq!(v[k]["arguments"]["call"], "REGISTER_KVM");
    v[k]["x0"] = Value::from("0x2");
    let m = mismatch(&v);
    assert_eq!(
        (m.index, m.cpu, m.entry.as_str()),
        (29, Some(0), "host_hvc_handler")
    );
    assert_eq!(
        (m.field.as_str(), m.trace.as_str(), m.model.as_str()),
        ("x0", "0x2", "0x1")
    );
    assert_eq!(m.line, k + 1);
}

#[test]
fn every_changed_x0_is_caught_where_it_was_planted() {
    let v = lines();
    let mut planted = 0;
    for k in 0..v.len() {
        let Some(x0) = v[k]["x0"].as_str() else {
            continue;
        };
        let x = u64::from_str_radix(&x0[2..], 16).unwrap();
        let mut w = v.clone();
        w[k]["x0"] = Value::from(format!("{:#x}", x ^ 1));
        let m = mismatch(&w);
        assert_eq!(m.index as u64, v[k]["seq"].as_u64().unwrap(), "{m}");
        assert_eq!(m.field, "x0", "{m}");
        planted += 1;
    }
    assert!(planted >= 20, "{planted} entries with an x0");
}

#[test]
fn a_changed_owner_is_reported_at_its_entry() {
    let mut v = lines();
    // Entry 65: VERIFY_VM_IMAGE moves the image block to VM 1.
    let k = at(&v, 65);
    assert_eq!(v[k]["arguments"]["call"], "VERIFY_VM_IMAGE");
    assert_eq!(v[k]["pages"][0][0], 0x42000);
    assert_eq!(v[k]["pages"][0][1], 1);
    v[k]["pages"][0][1] = Value::from(0);
    let m = mismatch(&v);
    assert_eq!((m.index, m.entry.as_str()), (65, "host_hvc_handler"));
    assert_eq!(m.field, "page 0x42000");
    assert!(
        m.trace.starts_with("owner 0 ") && m.model.starts_with("owner 1 "),
        "{m}"
    );
}

#[test]
fn every_page_record_is_checked() {
    // In every entry that lists pages, a change to the owner, the count or the gfn of its
    // first and its last page is caught there.
    let v = lines();
    let mut planted = 0;
    for k in 0..v.len() {
        let n = v[k]["pages"].as_array().map_or(0, Vec::len);
        for p in [0, n.saturating_sub(1)].into_iter().filter(|_| n > 0) {
            for field in 1..=3 {
                let mut w = v.clone();
                let f = &mut w[k]["pages"][p][field];
                *f = if field == 3 {
                    let g = u64::from_str_radix(&f.as_str().unwrap()[2..], 16).unwrap();
                    Value::from(format!("{:#x}", g ^ 1))
                } else {
                    Value::from(f.as_u64().unwrap() ^ 1)
                };
                let m = mismatch(&w);
                assert_eq!(m.index as u64, v[k]["seq"].as_u64().unwrap(), "{m}");
                assert!(m.field.starts_with("page 0x"), "{m}");
                planted += 1;
            }
        }
    }
    assert!(planted >= 30, "{planted}");
}

#[test]
fn every_stage2_leaf_is_checked() {
    // In every entry that gives stage-2 leaves, a change to the first or last one is caught
    // there: a mapped descriptor with a permission bit flipped, an unmapped one mapped.
    let v = lines();
    let mut planted = 0;
    for k in 0..v.len() {
        let n = v[k]["s2"].as_array().map_or(0, Vec::len);
        for p in [0, n.saturating_sub(1)].into_iter().filter(|_| n > 0) {
            let mut w = v.clone();
            let leaf = &mut w[k]["s2"][p];
            let d = u64::from_str_radix(&leaf[3].as_str().unwrap()[2..], 16).unwrap();
            if d == 0 {
                let gfn = leaf[1].as_u64().unwrap();
                leaf[2] = Value::from(3);
                leaf[3] = Value::from(format!("{:#x}", (gfn << 12) | 0xfff));
            } else {
                leaf[3] = Value::from(format!("{:#x}", d ^ 0x40));
            }
            let m = mismatch(&w);
            assert_eq!(m.index as u64, v[k]["seq"].as_u64().unwrap(), "{m}");
            assert!(m.field.starts_with("stage 2 of principal "), "{m}");
            planted += 1;
        }
    }
    assert!(planted >= 100, "{planted}");
}

#[test]
fn a_stage2_leaf_left_out_is_reported() {
    let mut v = lines();
    // Entry 0: the host's first instruction fetch maps its entry page.
    let k = at(&v, 0);
    assert_eq!(
        v[k]["s2"][0],
        serde_json::json!([0, 0x40200, 3, "0x40200fff"])
    );
    v[k]["s2"] = Value::Array(vec![]);
    let m = mismatch(&v);
    assert_eq!((m.index, m.entry.as_str()), (0, "host_npt_handler"));
    assert_eq!(m.field, "stage 2 of principal 0 at gfn 0x40200");
    assert_eq!(m.trace, "(not given)");
    assert_eq!(m.model, "pfn 0x40200 level 3 descriptor 0x40200fff");
    // Entry 65: VERIFY_VM_IMAGE takes the image block from the host; the host's leaves
    // left out.
    let mut v = lines();
    let k = at(&v, 65);
    let s2 = v[k]["s2"].as_array_mut().unwrap();
    s2.retain(|l| l[0] != 0);
    let m = mismatch(&v);
    assert_eq!(
        (m.index, m.field.as_str()),
        (65, "stage 2 of principal 0 at gfn 0x42000")
    );
}

#[test]
fn a_page_left_out_is_reported() {
    let mut v = lines();
    // Entry 69: the guest's GRANT of its data page (its count goes to 1).
    let k = at(&v, 69);
    assert_eq!(v[k]["arguments"]["op"], "grant");
    assert_eq!(v[k]["pages"].as_array().unwrap().len(), 1);
    v[k]["pages"] = Value::Array(vec![]);
    let m = mismatch(&v);
    assert_eq!((m.index, m.entry.as_str()), (69, "vm_exit_handler"));
    assert_eq!(m.trace, "(not written)");
    assert!(m.model.contains("count 1"), "{m}");
}

#[test]
fn a_dropped_entry_is_reported_where_it_is_missing() {
    let v = lines();
    // Dropped as it is: the numbering shows the gap at the next entry.
    let m = mismatch(&drop_entry(&v, 40, false));
    assert_eq!(
        (m.index, m.field.as_str(), m.trace.as_str()),
        (40, "seq", "41")
    );
    // Dropped and renumbered: REGISTER_VCPU of vCPU 0 (entry 30) never happened. The next
    // hypercall's register file is given against the host's file as the dropped entry left
    // it, so what it brought in is not what its record says.
    let m = mismatch(&drop_entry(&v, 30, true));
    assert_eq!(
        (m.index, m.field.as_str()),
        (30, "arguments: x0 (against regs.found)"),
        "{m}"
    );
    // Nor can the gap be hidden by leaving the hypercalls' files out: a host hypercall's
    // record without them is malformed.
    let mut bare = drop_entry(&v, 30, true);
    for l in &mut bare {
        if l["entry"][0] == "host_hvc_handler" {
            l.as_object_mut().unwrap().remove("regs");
        }
    }
    let t = text(&bare);
    assert_eq!(
        malformed(&t).field,
        "regs",
        "host hypercalls must give their files"
    );
    // The first vCPU run (entry 66) dropped: the guest's exit that follows comes from a
    // CPU the model still has in the host.
    let m = mismatch(&drop_entry(&v, 66, true));
    assert_eq!((m.index, m.field.as_str()), (66, "principal"), "{m}");
    assert_eq!(
        (m.trace.as_str(), m.model.as_str()),
        ("vm 1 vcpu 0", "host")
    );
    // The last entry dropped: the final line's count disagrees.
    let mut w = drop_entry(&v, 102, false);
    let m = mismatch(&w);
    assert_eq!(
        (m.entry.as_str(), m.field.as_str()),
        ("final", "final.entries")
    );
    w.last_mut().unwrap()["final"]["entries"] = Value::from(102);
    assert!(check(&text(&w)).is_ok());
}

#[test]
fn changed_results_states_streams_and_worlds_are_reported() {
    let v = lines();
    // A halt KCore did not have.
    let mut w = v.clone();
    let k = at(&w, 48);
    w[k]["result"] = Value::from("halt");
    let m = mismatch(&w);
    assert_eq!(
        (
            m.index,
            m.field.as_str(),
            m.trace.as_str(),
            m.model.as_str()
        ),
        (48, "result", "halt", "ok")
    );
    // A VM state the model does not reach: VM 1 VERIFIED after SET_BOOT_INFO.
    let mut w = v.clone();
    let k = at(&w, 48);
    assert_eq!(w[k]["vm"]["state"], "READY");
    w[k]["vm"]["state"] = Value::from("VERIFIED");
    let m = mismatch(&w);
    assert_eq!((m.index, m.field.as_str()), (48, "VM 1 state"));
    // A VM record left out where the model changes a state: the guest's power-off (90).
    let mut w = v.clone();
    let k = at(&w, 97);
    assert_eq!(w[k]["action"], "guest_psci");
    w[k].as_object_mut().unwrap().remove("vm");
    let m = mismatch(&w);
    assert_eq!(
        (m.index, m.field.as_str(), m.trace.as_str()),
        (97, "VM 1 state", "(not given)")
    );
    // An untrusted value KCore read that the model does not (the guest's ESR at its
    // stage-2 fault, entry 67, given twice).
    let mut w = v.clone();
    let k = at(&w, 67);
    let rec = w[k]["rec"].as_array_mut().unwrap();
    rec.push(rec[0].clone());
    let m = mismatch(&w);
    assert_eq!(m.index, 67);
    assert_eq!(m.field, "rec: values of principal 1's stream read");
    assert_eq!((m.trace.as_str(), m.model.as_str()), ("2", "1"));
    // The signature's verdict (VERIFY_VM_IMAGE's last untrusted value) forged to 0: the
    // model powers VM 1 off where KCore verified it.
    let mut w = v.clone();
    let k = at(&w, 65);
    let rec = w[k]["rec"].as_array_mut().unwrap();
    let last = rec.len() - 1;
    assert_eq!(rec[last], serde_json::json!([0, "0x1"]));
    rec[last][1] = Value::from("0x0");
    let m = mismatch(&w);
    assert_eq!((m.index, m.field.as_str()), (65, "VM 1 state"));
    assert!(m.model.starts_with("POWEROFF"), "{m}");
    // An exit that went to the host, told as one that stayed in the VM.
    let mut w = v.clone();
    let k = at(&w, 70);
    assert_eq!(w[k]["action"], "guest_wfx");
    assert!(w[k]["x0"].is_string());
    w[k]["x0"] = Value::Null;
    let m = mismatch(&w);
    assert_eq!(
        (m.index, m.field.as_str(), m.trace.as_str()),
        (70, "returns to", "the VM")
    );
    // An exit on the other CPU (the model runs VM 1's vCPU 0 on CPU 0).
    let mut w = v.clone();
    let k = at(&w, 69);
    w[k]["cpu"] = Value::from(1);
    let m = mismatch(&w);
    assert_eq!(
        (m.index, m.cpu, m.field.as_str()),
        (69, Some(1), "principal")
    );
}

#[test]
fn malformed_traces_name_the_line_and_field() {
    let v = lines();
    let t = text(&v);
    let cut: String = t.lines().take(20).map(|l| format!("{l}\n")).collect();
    let m = malformed(&cut);
    assert_eq!((m.line, m.field.as_str()), (21, "final"));
    // Cut just after CPU 1's bring-up note: a note no entry follows.
    let note = v.iter().rposition(|l| l["glue"] == "cpu_init").unwrap();
    let cut: String = t.lines().take(note + 1).map(|l| format!("{l}\n")).collect();
    assert_eq!(malformed(&cut).field, "glue");
    let bad_json = EXCERPT.replacen("{\"seq\":5,", "{\"seq\":5,,", 1);
    assert_eq!(malformed(&bad_json).line, at(&v, 5) + 1);
    for (seq, key, value, field) in [
        (3, "x0", Value::from("7"), "x0"),
        (29, "x0", Value::Null, "x0"),
        (4, "cpu", Value::from(2), "cpu"),
        (5, "entry", Value::from(vec!["host_irq_handler"]), "entry"),
        (6, "action", Value::from("guest_store"), "action"),
        (7, "result", Value::from("fine"), "result"),
        (8, "principal", Value::from("vm one"), "principal"),
        (9, "rec", Value::from(vec![Value::from(1)]), "rec[0]"),
        (10, "lost", Value::from(true), "lost"),
    ] {
        let mut w = v.clone();
        let k = at(&w, seq);
        w[k][key] = value;
        let m = malformed(&text(&w));
        assert_eq!((m.line, m.field.as_str()), (k + 1, field), "{m}");
        assert!(!m.to_string().contains('\n'));
    }
    for key in ["pages", "s2"] {
        let mut w = v.clone();
        let k = at(&w, 11);
        w[k].as_object_mut().unwrap().remove(key);
        assert_eq!(malformed(&text(&w)).field, key);
    }
    let mut w = v.clone();
    w[0]["machine"].as_object_mut().unwrap().remove("mmio");
    assert_eq!(malformed(&text(&w)).field, "machine.mmio");
    let mut w = v.clone();
    w[0]["profile"] = Value::from("seed");
    assert_eq!(malformed(&text(&w)).field, "profile");
}

/// The excerpt with a final line carrying the digest of the state the model reaches after
/// all of it: what KCore prints at the end of a run (`cargo xtask qemu` and `cargo xtask
/// linux` check that KCore's own digest equals the model's on whole runs).
fn with_digest(v: &[Value]) -> Vec<Value> {
    let t = corevisor_check::trace_check::parse(&text(v)).expect("the excerpt parses");
    let d = corevisor_check::trace_check::model_digest(&t).expect("the excerpt agrees");
    let mut w = v.to_vec();
    w.last_mut().unwrap()["final"]["digest"] = serde_json::json!({
        "pages": format!("{:#x}", d.pages),
        "leaves": format!("{:#x}", d.leaves),
        "leaf_count": d.leaf_count,
        "vms": format!("{:#x}", d.vms),
    });
    w
}

#[test]
fn an_entry_dropped_without_a_trace_of_it_is_caught_by_the_final_state_digest() {
    let v = with_digest(&lines());
    let s = check(&text(&v)).expect("the excerpt with its digest agrees");
    let n = s.digest.expect("the digest was compared");
    assert!(n > 0, "{s}");
    assert!(s.to_string().contains("final state digest agrees"), "{s}");
    // Host stage-2 faults whose removal (renumbered, the final count adjusted) no entry
    // shows: the model never maps the page, and nothing later looks at it.
    let mut unseen = 0;
    // The first dozen host faults (each candidate costs two replays).
    let faults = v
        .iter()
        .filter_map(|l| {
            let seq = l["seq"].as_u64()?;
            (l["entry"][0].as_str() == Some("host_npt_handler")).then_some(seq)
        })
        .take(12);
    for seq in faults {
        let dropped = drop_entry(&v, seq, true);
        let mut plain = dropped.clone();
        plain.last_mut().unwrap()["final"]
            .as_object_mut()
            .unwrap()
            .remove("digest");
        if check(&text(&plain)).is_err() {
            continue; // a later entry shows the gap already
        }
        unseen += 1;
        let m = mismatch(&dropped);
        assert_eq!(m.entry, "final", "seq {seq}: {m}");
        assert!(
            m.field.starts_with("final.digest."),
            "seq {seq}: caught by {m}"
        );
    }
    assert!(unseen >= 3, "only {unseen} entries could be dropped unseen");
    // A changed digest part is named.
    let mut w = v.clone();
    w.last_mut().unwrap()["final"]["digest"]["vms"] = Value::from("0x1");
    assert_eq!(mismatch(&w).field, "final.digest.vms");
    w.last_mut().unwrap()["final"]["digest"]["vms"] = Value::from(7);
    let e = malformed(&text(&w));
    assert!(e.to_string().contains("final.digest.vms"), "{e}");
}

#[test]
fn host_fault_windows_count_two_cpus_inside_kcore_at_once() {
    let mut v = lines();
    // The excerpt's host faults, given entry tickets one after another: none overlap.
    let faults: Vec<usize> = (0..v.len())
        .filter(|&k| v[k]["entry"][0] == "host_npt_handler")
        .collect();
    assert!(faults.len() >= 3);
    for (i, &k) in faults.iter().enumerate() {
        v[k]["window"] = serde_json::json!([2 * i, 2 * i + 1]);
    }
    let s = check(&text(&v)).expect("windows do not change the replay");
    assert_eq!(s.concurrent, Some(0));
    assert!(s.to_string().contains("0 host faults entered kcore"), "{s}");
    // Entry 27 (CPU 1's first fault) entered kcore while entry 26 (CPU 0's) was inside:
    // one overlap. The windows say when each was inside; the replay order stays the trace's.
    let (a, b) = (at(&v, 26), at(&v, 27));
    assert_eq!(
        (v[a]["cpu"].as_u64(), v[b]["cpu"].as_u64()),
        (Some(0), Some(1))
    );
    let (wa, wb) = (v[a]["window"].clone(), v[b]["window"].clone());
    let ea = wa[0].as_u64().unwrap();
    v[a]["window"] = serde_json::json!([ea, ea + 3]);
    v[b]["window"] = serde_json::json!([ea + 1, ea + 2]);
    assert_eq!(check(&text(&v)).unwrap().concurrent, Some(1));
    // The same windows on one CPU are not two CPUs inside kcore.
    let mut w = v.clone();
    w[b]["cpu"] = 0.into();
    assert_eq!(concurrent_of(&w), Some(0));
    v[a]["window"] = wa;
    v[b]["window"] = wb;
    // A window that closes before it opens, or on another entry point, is malformed.
    let mut w = v.clone();
    w[a]["window"] = serde_json::json!([5, 5]);
    assert!(malformed(&text(&w)).to_string().contains("window"));
    let hvc = (0..v.len())
        .find(|&k| v[k]["entry"][0] == "host_hvc_handler")
        .unwrap();
    let mut w = v.clone();
    w[hvc]["window"] = serde_json::json!([100, 101]);
    assert!(malformed(&text(&w)).to_string().contains("window"));
    // Without windows: no count.
    assert_eq!(check(EXCERPT).unwrap().concurrent, None);
}

/// The concurrency count of a trace that need not replay (only parsed).
fn concurrent_of(v: &[Value]) -> Option<usize> {
    corevisor_check::trace_check::parse(&text(v))
        .expect("parses")
        .concurrent()
}

/// The register file `side` ("found" or "left") of entry `seq`, as the trace gives it.
fn file_of<'a>(v: &'a mut [Value], seq: u64, side: &str) -> &'a mut serde_json::Map<String, Value> {
    let k = at(v, seq);
    v[k]["regs"][side]
        .as_object_mut()
        .expect("a world switch gives its files")
}

/// Word `word` of context `ctx`'s file as the trace has it whole after entry `seq` (every
/// record's deltas up to it applied, as check-trace's bases do).
fn whole(v: &[Value], seq: u64, ctx: u64, word: &str) -> u64 {
    let mut last = 0;
    for l in v
        .iter()
        .take_while(|l| l["seq"].as_u64().is_none_or(|s| s <= seq))
    {
        for side in ["found", "left"] {
            let f = &l["regs"][side];
            if f["ctx"].as_u64() == Some(ctx) {
                if let Some(x) = f[word].as_str() {
                    last = u64::from_str_radix(x.trim_start_matches("0x"), 16).unwrap();
                }
            }
        }
    }
    last
}

/// (index, field, trace, model) of the first mismatch.
fn first(v: &[Value]) -> (usize, String, String, String) {
    let m = mismatch(v);
    (m.index, m.field, m.trace, m.model)
}

/// Each world switch's files are compared whole (issue 22): the planted EL2 faults
/// `world_switch_forgets_sctlr` and `fpsimd_not_restored` as their traces would show them.
#[test]
fn a_world_switch_that_forgets_a_register_is_caught() {
    let v = lines();
    // Entry 66, vCPU 0's first run: KCore loads its reset SCTLR_EL1; forgetting it leaves
    // the host's (the value the host brought in).
    let mut w = v.clone();
    let host_sctlr = file_of(&mut w, 66, "found")["sctlr_el1"].clone();
    assert_eq!(file_of(&mut w, 66, "left")["sctlr_el1"], "0xc50078");
    file_of(&mut w, 66, "left").insert("sctlr_el1".into(), host_sctlr);
    assert_eq!(
        first(&w),
        (
            66,
            "regs.left.sctlr_el1".into(),
            "0x30d00800".into(),
            "0xc50078".into()
        )
    );
    // Entry 72, vCPU 0 run again after its WFI: its D8 is in its context; a switch that
    // does not restore FP/SIMD leaves the host's D8 (which the host set before the run).
    let mut w = v.clone();
    let host_d8 = file_of(&mut w, 72, "found")["q8_lo"].clone();
    assert_eq!(host_d8, "0xfeedface00000000");
    file_of(&mut w, 72, "left").insert("q8_lo".into(), host_d8);
    let (k, field, t, _) = first(&w);
    assert_eq!(
        (k, field.as_str(), t.as_str()),
        (72, "regs.left.q8_lo", "0xfeedface00000000")
    );
    // Back in the host (entry 70's exit): its x19 as it left it.
    let mut w = v.clone();
    file_of(&mut w, 70, "left").insert("x19".into(), Value::from("0x1"));
    let (k, field, ..) = first(&w);
    assert_eq!((k, field.as_str()), (70, "regs.left.x19"));
}

/// What the CPU brings in: the world's words are inputs, KCore's are checked; the context
/// numbers; the glue's own write (`save_resume_point`) and its bring-up notes.
#[test]
fn kcore_state_changed_behind_the_models_back_is_caught() {
    let v = lines();
    let mut w = v.clone();
    file_of(&mut w, 68, "found").insert("hcr_el2".into(), Value::from("0x1"));
    let (k, field, t, _) = first(&w);
    assert_eq!(
        (k, field.as_str(), t.as_str()),
        (68, "regs.found.hcr_el2 (KCore's, not the world's)", "0x1")
    );
    let mut w = v.clone();
    file_of(&mut w, 68, "found").insert("ctx".into(), Value::from(1));
    assert_eq!(
        first(&w),
        (68, "regs.found.ctx".into(), "1".into(), "0".into())
    );
    // Without the glue's note of the resume point at 66's exit, the model resumes vCPU 0
    // at its first-run pc at 67.
    let mut w = v.clone();
    let k = at(&w, 67);
    assert_eq!(w[k]["glue"], serde_json::json!(["save_resume_point"]));
    w[k].as_object_mut().unwrap().remove("glue");
    let (k, field, ..) = first(&w);
    assert_eq!((k, field.as_str()), (68, "regs.left.elr_el2"));
    // A bring-up note that gives CPU 0 another principal's stage 2.
    let mut w = v.clone();
    let k = w.iter().position(|l| l["glue"] == "cpu_init").unwrap();
    w[k]["regs"]["vttbr_el2"] = Value::from("0x1000000410000");
    let (k, field, ..) = first(&w);
    assert_eq!((k, field.as_str()), (0, "cpu_init of cpu 0: vttbr_el2"));
}

/// An untrusted value is compared with the value the checker derives from the registers the
/// host brought in (the planted `mmio_results_from_x9`: the MMIO result taken from x9).
#[test]
fn an_mmio_result_from_the_wrong_register_is_caught() {
    let v = lines();
    let mut w = v.clone();
    // The host's x9 as VCPU_RUN 74 found it (the whole file: bases and deltas).
    let x9 = Value::from(format!("{:#x}", whole(&w, 74, 0, "x9")));
    assert_ne!(x9, "0x4d4d494f00000000");
    let k = at(&w, 74);
    assert_eq!(w[k]["rec"], serde_json::json!([[1, "0x4d4d494f00000000"]]));
    w[k]["rec"][0][1] = x9.clone();
    let (k, field, t, m) = first(&w);
    assert_eq!(
        (k, field.as_str(), t.as_str(), m.as_str()),
        (
            74,
            "input: value 0 of VM 1 (the host's x8 (for x5))",
            x9.as_str().unwrap(),
            "0x4d4d494f00000000"
        )
    );
    // VCPU_RUN's control values are the host's x2..x5.
    let mut w = v.clone();
    let k = at(&w, 68);
    w[k]["core"][1][1] = Value::from("0x80401000");
    let (k, field, ..) = first(&w);
    assert_eq!(
        (k, field.as_str()),
        (
            68,
            "input: control value 1 of VM 1 (the host's x3 for VM 1)"
        )
    );
    // A guest abort's ESR_EL2 as the exit found it.
    let mut w = v.clone();
    let k = at(&w, 73);
    w[k]["rec"][0][1] = Value::from("0x0");
    let (k, field, ..) = first(&w);
    assert_eq!(
        (k, field.as_str()),
        (73, "input: value 0 of VM 1 (ESR_EL2)")
    );
}

/// A valid leaf the model changes must be invalidated within the entry (the planted
/// `missed_tlbi`: break-before-make without the invalidation).
#[test]
fn a_missed_tlb_invalidation_is_caught() {
    let v = lines();
    for seq in [65, 93, 96, 98] {
        let mut w = v.clone();
        let k = at(&w, seq);
        assert!(w[k]["tlbi"].is_array(), "entry {seq} invalidates");
        w[k].as_object_mut().unwrap().remove("tlbi");
        let (k, field, t, _) = first(&w);
        assert_eq!(k as u64, seq);
        assert!(field.starts_with("tlbi: stage 2 of principal"), "{field}");
        assert_eq!(t, "(not invalidated)");
    }
    // A run that misses the page by one.
    let mut w = v.clone();
    let k = at(&w, 93);
    let ipa = w[k]["tlbi"][0][1].as_str().unwrap().to_string();
    let moved = u64::from_str_radix(ipa.trim_start_matches("0x"), 16).unwrap() + 4096;
    w[k]["tlbi"][0][1] = Value::from(format!("{moved:#x}"));
    let (k, field, ..) = first(&w);
    assert_eq!(k, 93);
    assert!(field.starts_with("tlbi: stage 2 of principal"), "{field}");
    // The VMID's whole TLB covers every leaf.
    let mut w = v.clone();
    let k = at(&w, 93);
    let vmid = w[k]["tlbi"][0][0].clone();
    w[k]["tlbi"] = serde_json::json!([[vmid, "0x0", 0]]);
    assert!(check(&text(&w)).is_ok());
}

/// The planted EL2 fault `trace_drops_entry` as the glue plants it: entry
/// `TRACE_DROPS_SEQ`'s record is never written and the rest are numbered without it.
#[test]
fn the_trace_dropping_an_entry_as_planted_at_el2_is_caught() {
    use corevisor_kcore::mutants::{Fault, TRACE_DROPS_SEQ};
    assert_eq!(Fault::TraceDropsEntry.name(), "trace_drops_entry");
    let v = with_digest(&lines());
    let m = mismatch(&drop_entry(&v, TRACE_DROPS_SEQ, true));
    assert!(m.index >= TRACE_DROPS_SEQ as usize, "{m}");
    // The dropped host fault's leaf, given by a later entry, or the final state.
    assert!(
        m.field.starts_with("stage 2 of principal 0 at gfn")
            || m.field.starts_with("final.digest."),
        "{m}"
    );
}

/// A dropped world switch: the register files of the next one are given against bases the
/// checker never saw move, so it cannot go unseen.
#[test]
fn a_dropped_world_switch_is_caught() {
    let v = with_digest(&lines());
    for seq in [66, 67, 72, 74] {
        let m = mismatch(&drop_entry(&v, seq, true));
        assert_eq!(m.index as u64, seq, "{m}");
    }
}

/// The record's own account of a world switch (`arguments`, the action) must be the
/// registers the CPU brought in, and a bring-up note must start the host as KCore does.
#[test]
fn arguments_that_disagree_with_the_registers_are_caught() {
    let v = lines();
    // VCPU_RUN 68's x3 (the gpa it proposes) as the record gives it.
    let mut w = v.clone();
    let k = at(&w, 68);
    w[k]["arguments"]["args"][2] = Value::from("0x80402000");
    let (k, field, ..) = first(&w);
    assert_eq!(
        (k, field.as_str()),
        (68, "arguments: x3 (against regs.found)")
    );
    // A guest abort (73, the MMIO read) whose syndrome the record misstates.
    let mut w = v.clone();
    let k = at(&w, 73);
    w[k]["arguments"]["esr"] = Value::from("0x93c58006");
    let (k, field, ..) = first(&w);
    assert_eq!(
        (k, field.as_str()),
        (73, "arguments: esr (against regs.found)")
    );
    // The same exit told as an interrupt.
    let mut w = v.clone();
    let k = at(&w, 70);
    assert_eq!(w[k]["action"], "guest_wfx");
    w[k]["action"] = Value::from("irq");
    let (k, field, ..) = first(&w);
    assert_eq!(
        (k, field.as_str()),
        (70, "arguments: exit kind (against regs.found)")
    );
    // The left file said to be another context's.
    let mut w = v.clone();
    file_of(&mut w, 66, "left").insert("ctx".into(), Value::from(9));
    let (k, field, ..) = first(&w);
    assert_eq!((k, field.as_str()), (66, "regs.left.ctx"));
    // CPU 0 brought up with another HCR_EL2 than the host's.
    let mut w = v.clone();
    let k = w.iter().position(|l| l["glue"] == "cpu_init").unwrap();
    w[k]["regs"]["hcr_el2"] = Value::from("0x80000001");
    let (k, field, ..) = first(&w);
    assert_eq!((k, field.as_str()), (0, "cpu_init of cpu 0: hcr_el2"));
}

#[test]
fn malformed_register_records_name_the_field() {
    let v = lines();
    let mut w = v.clone();
    let k = at(&w, 66);
    w[k].as_object_mut().unwrap().remove("regs");
    assert_eq!(malformed(&text(&w)).field, "regs");
    let mut w = v.clone();
    file_of(&mut w, 66, "left").insert("x99".into(), Value::from("0x1"));
    assert_eq!(malformed(&text(&w)).field, "regs.left.x99");
    let mut w = v.clone();
    file_of(&mut w, 66, "found").insert("x1".into(), Value::from(1));
    assert_eq!(malformed(&text(&w)).field, "regs.found.x1");
    let mut w = v.clone();
    let k = at(&w, 65);
    w[k]["glue"] = serde_json::json!(["save_resume_point"]);
    assert_eq!(malformed(&text(&w)).field, "glue");
    let mut w = v.clone();
    let k = at(&w, 93);
    w[k]["tlbi"][0] = serde_json::json!([1, 2]);
    assert_eq!(malformed(&text(&w)).field, "tlbi[0]");
    let mut w = v.clone();
    let k = w.iter().position(|l| l["glue"] == "cpu_init").unwrap();
    w[k]["regs"]["x0"] = Value::from("0x0");
    assert_eq!(malformed(&text(&w)).field, "regs.x0");
}
