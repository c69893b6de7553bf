//! Issue 6, "must show" 3: `run --trace` and `report` make a self-contained page that a real
//! headless browser (Debian's chromium; `cargo xtask test` installs it) renders with no
//! script error, and whose screenshot shows the ownership map drawn.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corevisor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_corevisor"))
        .args(args)
        .output()
        .unwrap()
}

fn chromium() -> PathBuf {
    let p = std::env::var("COREVISOR_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&p).exists(),
        "{p} is missing: install Debian's chromium (`cargo xtask test` does), or set COREVISOR_CHROMIUM"
    );
    PathBuf::from(p)
}

fn headless(extra: &[&str], page: &Path) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--enable-logging=stderr", "--v=0"])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

/// A report of the demo scenario, checked run, in a fresh directory.
fn demo_report(dir: &str) -> (PathBuf, usize) {
    let d = std::env::temp_dir().join(dir);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let (trace, page) = (d.join("trace.jsonl"), d.join("report.html"));
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/demo.json");
    let out = corevisor(&[
        "run",
        demo.to_str().unwrap(),
        "--engine",
        "core",
        "--check",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let steps = std::fs::read_to_string(&trace).unwrap().lines().count() - 2;
    let out = corevisor(&[
        "report",
        trace.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (page, steps)
}

#[test]
fn the_trace_has_every_trap_with_its_fields() {
    let (page, steps) = demo_report("corevisor-trace-test");
    let text = std::fs::read_to_string(page.with_file_name("trace.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["trace"], "corevisor");
    assert!(steps > 40);
    for l in &lines[1..lines.len() - 1] {
        for k in [
            "seq",
            "cpu",
            "principal",
            "entry",
            "action",
            "arguments",
            "result",
            "time_ns",
            "owners",
        ] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }
    // Every host hypercall entered KCore through host_hvc_handler; every guest exit
    // through vm_exit_handler.
    assert!(lines
        .iter()
        .any(|l| l["entry"] == serde_json::json!(["host_hvc_handler"])));
    assert!(lines
        .iter()
        .any(|l| l["entry"] == serde_json::json!(["vm_exit_handler"])));
    assert!(lines
        .iter()
        .any(|l| l["owners"].as_array().is_some_and(|o| o.len() == 512)));
    assert!(lines.last().unwrap().get("final").is_some());
}

#[test]
fn the_report_renders_in_headless_chromium_without_errors() {
    let (page, steps) = demo_report("corevisor-report-test");
    let out = headless(&["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        dom.contains("data-status=\"ok\""),
        "the page's script failed: {}",
        &dom[..dom.len().min(400)]
    );
    assert_eq!(
        dom.matches("<tr").count(),
        steps + 1,
        "one table row per step, plus the header"
    );
    assert!(
        dom.matches("<rect").count() > 10,
        "the ownership map and timelines are drawn"
    );
    assert!(
        log.contains("corevisor-report ready"),
        "the script ran to its end: {log}"
    );
    assert!(
        !log.contains("Uncaught") && !log.contains("ERROR:CONSOLE"),
        "console errors: {log}"
    );
}

#[test]
fn screenshot_shows_the_ownership_map() {
    let (page, _) = demo_report("corevisor-shot-test");
    let shot = page.with_file_name("shot.png");
    let out = headless(
        &[
            "--window-size=1280,1400",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 1400));
    let px = info.line_size / info.width as usize;
    let count = |rgb: [u8; 3]| buf.chunks(px).filter(|p| p[..3] == rgb).count();
    // VM 1's and VM 2's colours (the palette's first two) fill their rows of the map.
    assert!(
        count([0x4f, 0x7c, 0xac]) > 2000,
        "VM 1 colour: {}",
        count([0x4f, 0x7c, 0xac])
    );
    assert!(
        count([0xe0, 0x7a, 0x5f]) > 2000,
        "VM 2 colour: {}",
        count([0xe0, 0x7a, 0x5f])
    );
}

#[test]
fn a_bad_trace_gets_one_line_and_exit_2() {
    let d = std::env::temp_dir().join("corevisor-bad-trace");
    std::fs::create_dir_all(&d).unwrap();
    for (name, text) in [
        ("empty", ""),
        ("notjson", "{\"trace\": \"corevisor\"}\nnot json\n"),
        ("other", "{\"a\": 1}\n"),
    ] {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let out = corevisor(&[
            "report",
            p.to_str().unwrap(),
            "-o",
            d.join("r.html").to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{name}"
        );
    }
}
