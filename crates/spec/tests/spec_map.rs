//! `docs/spec-map.md` lists every Definition, Fixpoint and Lemma of the seed, and every
//! Definition and Fixpoint has a Rust `pub fn` of the same name in `crates/spec/src`.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seed_names() -> Vec<(String, String)> {
    let path = repo().join("../shared/seed/TrapHandlerSpec.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the seed must be beside the repository at {}: {e}",
            path.display()
        );
    });
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let kind = w.next()?;
            if !["Definition", "Fixpoint", "Lemma"].contains(&kind) {
                return None;
            }
            let name: String = w
                .next()?
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some((kind.to_string(), name))
        })
        .collect()
}

#[test]
fn every_seed_name_is_mapped_and_implemented() {
    let names = seed_names();
    let count = |k: &str| names.iter().filter(|(kind, _)| kind == k).count();
    assert_eq!(
        (count("Definition"), count("Fixpoint"), count("Lemma")),
        (66, 13, 5)
    );
    let map = std::fs::read_to_string(repo().join("docs/spec-map.md")).unwrap();
    let mut src = String::new();
    for e in std::fs::read_dir(repo().join("crates/spec/src")).unwrap() {
        src.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    let mut missing = Vec::new();
    for (kind, name) in &names {
        if !map.contains(&format!("| {name} | {kind} |")) {
            missing.push(format!("{kind} {name}: no row in docs/spec-map.md"));
        }
        let has_fn =
            src.contains(&format!("pub fn {name}(")) || src.contains(&format!("pub fn {name}<"));
        if kind != "Lemma" && !has_fn {
            missing.push(format!(
                "{kind} {name}: no `pub fn {name}` in crates/spec/src"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
