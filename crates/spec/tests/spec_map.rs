//! `docs/spec-map.md` lists every Definition, Fixpoint and Lemma of the seed, and every
//! Definition and Fixpoint has a Rust `pub fn` of the same name in `crates/spec/src`.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `Definition`, `Fixpoint` and `Lemma` line of a Coq text, in order.
fn names_in(text: &str) -> Vec<(String, String)> {
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

/// The seed's names as the repository keeps them (`crates/spec/seed-names.txt`), so the test
/// runs on a clone with no seed beside it.
fn seed_names() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("crates/spec/seed-names.txt")).unwrap();
    names_in(&text)
}

#[test]
fn the_kept_name_list_is_the_seeds() {
    let path = repo().join("../shared/seed/TrapHandlerSpec.md");
    match std::fs::read_to_string(&path) {
        // The seed is the authority when it is there.
        Ok(seed) => assert_eq!(seed_names(), names_in(&seed), "crates/spec/seed-names.txt"),
        Err(_) => eprintln!(
            "no seed at {}: checking against crates/spec/seed-names.txt only",
            path.display()
        ),
    }
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
