//! Issue 5, "must show" 3: verified boot and VM-state export with real cryptography, run on
//! the core beside the model (zero mismatches at every step): a tampered image is refused
//! (the VM is POWEROFF and never runs), a tampered or replayed export buffer is refused
//! (KCore halts), and the authentic paths work.

use corevisor_check::engine::Outcome;
use corevisor_check::lockstep::{CheckedStep, Lockstep};
use corevisor_kcore::consts::{POWEROFF, VERIFIED};
use corevisor_kcore::hw::Hw;
use corevisor_sim::scenario::{parse, Action, HvcCall, HvcName, Step};
use corevisor_sim::signing::sign_image;
use corevisor_spec::profile::ProfileKind;

const IMAGE_PA: u64 = 0x4020_0000;
const LOAD: u64 = 0x8000_0000;
const OUT: u64 = 0x4050_0000;
const COPY: u64 = 0x4060_0000;

fn lockstep() -> Lockstep {
    let sc = parse("t.json", r#"{"name": "t", "profile": "arm", "steps": []}"#).unwrap();
    Lockstep::for_scenario(&sc, Some(ProfileKind::Arm)).unwrap()
}

fn step(cpu: i128, action: Action) -> Step {
    Step::new(cpu, action)
}

fn hvc(n: &str, args: &[i128]) -> Step {
    step(
        0,
        Action::Hvc {
            call: HvcCall::Named(HvcName::parse(n).unwrap()),
            args: args.to_vec(),
        },
    )
}

/// Runs a step on both sides; any mismatch fails the test.
fn run(l: &mut Lockstep, s: Step) -> CheckedStep {
    let r = l.step(&s).unwrap();
    assert!(
        r.mismatches.is_empty(),
        "{}: {:?}",
        r.model.what,
        r.mismatches
    );
    assert!(
        r.model.broken.is_empty(),
        "{}: {:?}",
        r.model.what,
        r.model.broken
    );
    r
}

fn ok(l: &mut Lockstep, s: Step) {
    let r = run(l, s);
    assert_eq!(r.model.result, Outcome::Ok, "{}", r.model.what);
}

/// VM 1 with one vCPU and a one-page image at IMAGE_PA whose first word is `word`.
fn staged_vm(l: &mut Lockstep, word: i128) {
    ok(l, hvc("REGISTER_KVM", &[]));
    ok(l, hvc("REGISTER_VCPU", &[1, 0]));
    ok(
        l,
        step(
            0,
            Action::HostStore {
                addr: IMAGE_PA as i128,
                value: word,
            },
        ),
    );
    ok(l, hvc("SET_BOOT_INFO", &[1, LOAD as i128, 4096]));
    ok(l, hvc("REMAP_VM_IMAGE", &[1, (IMAGE_PA / 4096) as i128, 0]));
}

fn page_bytes(l: &Lockstep, pa: u64) -> Vec<u8> {
    (0..512)
        .flat_map(|w| l.core.core.hw.read64(pa + w * 8).to_le_bytes())
        .collect()
}

fn verify_with(l: &mut Lockstep, sig: [u8; 64]) -> CheckedStep {
    let mut args = vec![1i128];
    args.extend(
        sig.chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()) as i128),
    );
    run(l, hvc("VERIFY_VM_IMAGE", &args))
}

#[test]
fn a_signed_image_boots_and_a_tampered_one_never_runs() {
    // Authentic: the vendor signed exactly the staged bytes.
    let mut l = lockstep();
    staged_vm(&mut l, 0x5eed);
    let sig = sign_image(&[(LOAD, &page_bytes(&l, IMAGE_PA))]);
    assert_eq!(verify_with(&mut l, sig).model.result, Outcome::Ok);
    assert_eq!(l.core.core.vms[1].read().state, VERIFIED);
    ok(
        &mut l,
        step(
            1,
            Action::VcpuRun {
                vm: 1,
                vcpu: 0,
                map: None,
                pc: None,
            },
        ),
    );

    // Tampered: the host changes the image after the vendor signed it.
    let mut l = lockstep();
    staged_vm(&mut l, 0x5eed);
    let sig = sign_image(&[(LOAD, &page_bytes(&l, IMAGE_PA))]);
    // (Word 0: the model's `flatmem` holds one word per page, the seed's abstraction.)
    ok(
        &mut l,
        step(
            0,
            Action::HostStore {
                addr: IMAGE_PA as i128,
                value: 0xbad,
            },
        ),
    );
    assert_eq!(verify_with(&mut l, sig).model.result, Outcome::Ok);
    assert_eq!(
        l.core.core.vms[1].read().state,
        POWEROFF,
        "a forged image leaves the VM off"
    );
    // The image's pages are the VM's: the host cannot read them...
    assert_eq!(l.core.core.page(IMAGE_PA / 4096).owner, 1);
    // ...the vCPU can never run (KCore halts on the request)...
    let r = run(
        &mut l,
        step(
            1,
            Action::VcpuRun {
                vm: 1,
                vcpu: 0,
                map: None,
                pc: None,
            },
        ),
    );
    assert_eq!(r.model.result, Outcome::Halt);
}

#[test]
fn a_forged_image_is_scrubbed_when_the_host_reclaims_it() {
    let mut l = lockstep();
    staged_vm(&mut l, 0x5eed);
    // A signature by nobody: all zeroes.
    verify_with(&mut l, [0; 64]);
    assert_eq!(l.core.core.vms[1].read().state, POWEROFF);
    ok(
        &mut l,
        hvc("CLEAR_VM_S2_RANGE", &[1, IMAGE_PA as i128, 0x20_0000]),
    );
    assert_eq!(l.core.core.page(IMAGE_PA / 4096).owner, 0);
    let r = run(
        &mut l,
        step(
            0,
            Action::HostLoad {
                addr: IMAGE_PA as i128,
            },
        ),
    );
    assert_eq!(r.core.value, Some(0), "the image page comes back scrubbed");
}

/// VM 1 verified (its page at IMAGE_PA holds `0x5eed`), VM 1's page exported to OUT
/// (handle 0), VM 2 registered (READY) to import it.
fn exported() -> Lockstep {
    let mut l = lockstep();
    staged_vm(&mut l, 0x5eed);
    ok(&mut l, hvc("VERIFY_VM_IMAGE", &[1]));
    ok(
        &mut l,
        hvc("ENCRYPT_BUF", &[1, IMAGE_PA as i128, OUT as i128]),
    );
    assert_ne!(
        page_bytes(&l, OUT),
        page_bytes(&l, IMAGE_PA),
        "the host sees ciphertext"
    );
    ok(&mut l, hvc("REGISTER_KVM", &[]));
    l
}

#[test]
fn an_exported_page_imports_once_into_a_new_vm() {
    let mut l = exported();
    let plain = page_bytes(&l, IMAGE_PA);
    ok(&mut l, hvc("DECRYPT_BUF", &[2, OUT as i128, 0]));
    assert_eq!(l.core.core.page(OUT / 4096).owner, 2);
    assert_eq!(page_bytes(&l, OUT), plain, "the VM gets the plaintext back");
}

#[test]
fn a_tampered_export_buffer_is_refused() {
    let mut l = exported();
    ok(
        &mut l,
        step(
            0,
            Action::HostStore {
                addr: OUT as i128,
                value: 1,
            },
        ),
    );
    let r = run(&mut l, hvc("DECRYPT_BUF", &[2, OUT as i128, 0]));
    assert_eq!(r.model.result, Outcome::Halt);
}

/// `exported()`, then a second export of the same page (handle 1, sealed in COPY), the
/// import of handle 0 into VM 2, and VM 3 registered.
fn imported_once() -> Lockstep {
    let mut l = exported();
    ok(
        &mut l,
        hvc("ENCRYPT_BUF", &[1, IMAGE_PA as i128, COPY as i128]),
    );
    ok(&mut l, hvc("DECRYPT_BUF", &[2, OUT as i128, 0]));
    ok(&mut l, hvc("REGISTER_KVM", &[]));
    l
}

#[test]
fn a_replayed_export_handle_is_refused() {
    // Handle 0 was used: presenting it again (even with an authentic buffer) is refused.
    let mut l = imported_once();
    let r = run(&mut l, hvc("DECRYPT_BUF", &[3, COPY as i128, 0]));
    assert_eq!(
        r.model.result,
        Outcome::Halt,
        "a handle opens one buffer once"
    );
    // The buffer under its own handle imports.
    let mut l = imported_once();
    let r = run(&mut l, hvc("DECRYPT_BUF", &[3, COPY as i128, 1]));
    assert_eq!(r.model.result, Outcome::Ok);
}

#[test]
fn a_saved_vcpu_restores_into_a_new_vm_and_a_tampered_record_is_refused() {
    for tamper in [false, true] {
        let mut l = exported();
        ok(&mut l, hvc("SAVE_CRYPT_VCPU", &[1, 0, COPY as i128]));
        ok(&mut l, hvc("REGISTER_VCPU", &[2, 0]));
        if tamper {
            ok(
                &mut l,
                step(
                    0,
                    Action::HostStore {
                        addr: COPY as i128,
                        value: 3,
                    },
                ),
            );
        }
        // Handle 1: the second export since boot.
        let r = run(&mut l, hvc("LOAD_CRYPT_VCPU", &[2, 0, COPY as i128, 1]));
        if tamper {
            assert_eq!(r.model.result, Outcome::Halt);
        } else {
            assert_eq!(r.model.result, Outcome::Ok);
            assert_eq!(
                l.core.core.vms[2].read().inc_exe,
                1,
                "the VM resumes, it does not reset"
            );
            let (a, b) = (l.core.core.shadow[8].read(), l.core.core.shadow[16].read());
            assert_eq!((b.regs.x, b.states.pc), (a.regs.x, a.states.pc));
        }
    }
}

/// The export primitives bind what their comments say (found by cargo-mutants: constant
/// nonces and header words survived the end-to-end tests, which only round-trip).
#[test]
fn each_export_gets_its_own_nonce_and_its_header_words_carry_its_fields() {
    use corevisor_kcore::crypto::PAGE_BYTES;
    use corevisor_kcore::crypto::{open_page, seal_page, ExportHeader, ExportKey, EXPORT_MAGIC};
    let key = ExportKey([7; 32]);
    let page = [0x5a; PAGE_BYTES];
    let (mut a, mut b, mut c) = (page, page, page);
    let ha = seal_page(&key, 1, 1, &mut a);
    seal_page(&key, 1, 2, &mut b);
    seal_page(&key, 2, 1, &mut c);
    // One nonce per (VM, sequence number): one page never encrypts the same way twice.
    assert!(a != b && a != c && b != c, "a nonce was reused");
    let w = ha.to_words();
    assert_eq!(w[..3], [EXPORT_MAGIC, 1, 1]);
    let back = ExportHeader::from_words(&w);
    assert_eq!(
        (back.magic, back.vmid, back.seq, back.tag),
        (ha.magic, ha.vmid, ha.seq, ha.tag)
    );
    // A header that names another VM, sequence number or magic is refused as it stands,
    // whatever the tag (the contract of `open_page`), and the page is left as it was.
    let sealed = a;
    for h in [
        ExportHeader { vmid: 2, ..back },
        ExportHeader { seq: 2, ..back },
        ExportHeader { magic: 0, ..back },
    ] {
        assert!(!open_page(&key, 1, 1, &h, &mut a));
        assert_eq!(a, sealed);
    }
    assert!(open_page(&key, 1, 1, &back, &mut a));
    assert_eq!(a, page);
}

/// An image digest whose segment got fewer or more bytes than its size has no prehash
/// (`verify_image` then refuses it); one that got exactly its size has one.
#[test]
fn an_image_digest_is_signed_only_when_every_segment_got_its_size() {
    use corevisor_kcore::crypto::ImageDigest;
    let digest = |size: u64, bytes: usize| {
        let mut d = ImageDigest::new();
        d.segment(0x8000_0000, size);
        d.update(&vec![1u8; bytes]);
        d.into_prehash().is_some()
    };
    assert!(digest(8, 8));
    assert!(!digest(8, 4), "a segment short of its size");
    assert!(!digest(4, 8), "a segment past its size");
}
