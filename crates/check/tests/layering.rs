//! Issue 22, "No import circles": the modules of `corevisor-kcore`, `corevisor-sim`,
//! `corevisor-check` and the EL2 image `corevisor-el2` (`el2/src`, built with its own
//! toolchain, not by this workspace: only its text is read here) form layers. Every `crate::x` path in a module's files (its `use`
//! lines, paths inside function bodies, its tests) is an edge from that module to `x`; the
//! edges must form no cycle, so each crate reads top-down (`docs/assurance.md`, "Module
//! layering"). A path `super::super::...` would hide an edge, so it is refused too.
//!
//! `planted_circles_are_found` puts back, in memory, each circle issue 22 untied and shows
//! that the check finds it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `module -> module it uses -> where (file:line)`.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// A crate's sources: (top-level module, file relative to `src/`, text). `lib.rs` (the
/// root, which only declares the modules) is left out, and so is el2's `main.rs` (the root,
/// which declares the modules and passes the assembly's entries to them). A file a module includes with
/// `#[path = "..."]` (`check`'s `smmu_abs.rs`, in `lockstep`) belongs to that module.
fn sources(krate: &str) -> Vec<(String, String, String)> {
    let dir = CRATES.iter().find(|c| c.0 == krate).unwrap().1;
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
        .join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        out.push((top, rel, text));
    }
    assert!(!out.is_empty(), "no sources under {}", src.display());
    // `#[path = "x.rs"]` in a file: x.rs, next to it, is part of that file's module.
    let mut owner = BTreeMap::new();
    for (top, rel, text) in &out {
        for part in text.split("#[path = \"").skip(1) {
            let target = &part[..part.find('"').unwrap()];
            let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
            let path = if dir.is_empty() {
                target.to_string()
            } else {
                format!("{dir}/{target}")
            };
            owner.insert(path, top.clone());
        }
    }
    for (top, rel, _) in &mut out {
        if let Some(o) = owner.get(rel.as_str()) {
            *top = o.clone();
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text with comments, string and character literals blanked (newlines kept, so line
/// numbers stay right).
fn code_only(s: &str) -> String {
    let b: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string r"..." / r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() && !(b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')))
            {
                j += 1;
            }
            let end = (j + 1 + hashes).min(b.len());
            out.extend(b[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            out.extend(b[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            let end = if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                j + 1
            } else if b.get(i + 2) == Some(&'\'') {
                i + 3
            } else {
                i + 1
            };
            let end = end.min(b.len());
            out.extend(b[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_at(b: &[char], mut i: usize) -> (String, usize) {
    while i < b.len() && b[i].is_whitespace() {
        i += 1;
    }
    let start = i;
    while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
        i += 1;
    }
    (b[start..i].iter().collect(), i)
}

/// The first segments named after `crate::` at `i`: `crate::a::..` names `a`,
/// `crate::{a::.., b, self}` names `a` and `b`.
fn heads(b: &[char], i: usize) -> Vec<String> {
    let mut j = i;
    while j < b.len() && b[j].is_whitespace() {
        j += 1;
    }
    if b.get(j) != Some(&'{') {
        return vec![ident_at(b, j).0];
    }
    let mut out = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    j += 1;
    while j < b.len() {
        match b[j] {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && !c.is_whitespace() => {
                let (id, k) = ident_at(b, j);
                out.push(id);
                item_start = false;
                j = k;
                continue;
            }
            _ => {}
        }
        j += 1;
    }
    out
}

/// The edges between the modules of a crate's sources.
fn graph(files: &[(String, String, String)]) -> Graph {
    let modules: BTreeSet<&str> = files.iter().map(|(m, _, _)| m.as_str()).collect();
    let mut g = Graph::new();
    for (m, rel, text) in files {
        g.entry(m.clone()).or_default();
        let code = code_only(text);
        let b: Vec<char> = code.chars().collect();
        let word =
            |k: usize| k > 0 && (b[k - 1].is_alphanumeric() || b[k - 1] == '_' || b[k - 1] == '$');
        let line = |k: usize| b[..k].iter().filter(|&&c| c == '\n').count() + 1;
        let mut k = 0;
        while k + 7 <= b.len() {
            if b[k..k + 7].iter().copied().eq("crate::".chars()) && !word(k) {
                for h in heads(&b, k + 7) {
                    if h != *m && modules.contains(h.as_str()) {
                        let at = format!("{rel}:{}", line(k));
                        g.get_mut(m).unwrap().entry(h).or_default().push(at);
                    }
                }
                k += 7;
            } else if b[k..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':'])
                && !word(k)
                && ident_at(&b, k + 7).0 == "super"
            {
                panic!(
                    "{rel}:{}: write `crate::` instead of `super::super::`",
                    line(k)
                );
            } else {
                k += 1;
            }
        }
    }
    g
}

/// The modules in an order where each uses only those before it (lowest first), or the
/// circles (strongly connected components of more than one module, or a module using
/// itself never counts).
fn layers(g: &Graph) -> Result<Vec<String>, Vec<Vec<String>>> {
    // Tarjan's strongly connected components.
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        sccs: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, l);
                } else if self.on.contains(w.as_str()) {
                    let l = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(w);
                    scc.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                scc.sort();
                self.sccs.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        sccs: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    // Tarjan emits a component after every component it uses: lowest first.
    let circles: Vec<Vec<String>> = t.sccs.iter().filter(|s| s.len() > 1).cloned().collect();
    if circles.is_empty() {
        Ok(t.sccs.into_iter().flatten().collect())
    } else {
        Err(circles)
    }
}

/// Each circle with the edges inside it and where they are written.
fn explain(g: &Graph, circles: &[Vec<String>]) -> String {
    let mut s = String::new();
    for c in circles {
        s += &format!("circle {{{}}}:\n", c.join(", "));
        for a in c {
            for (b, at) in &g[a] {
                if c.contains(b) {
                    s += &format!("  {a} -> {b} ({})\n", at.join(", "));
                }
            }
        }
    }
    s
}

/// Each crate checked and its folder in the repository.
const CRATES: [(&str, &str); 4] = [
    ("kcore", "crates/kcore"),
    ("sim", "crates/sim"),
    ("check", "crates/check"),
    ("el2", "el2"),
];

#[test]
fn no_import_circles() {
    let mut failures = String::new();
    for (krate, dir) in CRATES {
        let g = graph(&sources(krate));
        match layers(&g) {
            Ok(order) => {
                // Each module's layer: one above the highest module it uses.
                let mut level = BTreeMap::<&str, usize>::new();
                for m in &order {
                    let l = g[m]
                        .keys()
                        .map(|d| level[d.as_str()] + 1)
                        .max()
                        .unwrap_or(0);
                    level.insert(m, l);
                }
                let top = level.values().copied().max().unwrap_or(0);
                let layers: Vec<String> = (0..=top)
                    .map(|l| {
                        let at: Vec<&str> =
                            level.iter().filter(|e| *e.1 == l).map(|e| *e.0).collect();
                        at.join(", ")
                    })
                    .collect();
                println!("{krate}, lowest first: {}", layers.join(" < "));
            }
            Err(circles) => failures += &format!("{dir}:\n{}", explain(&g, &circles)),
        }
    }
    assert!(failures.is_empty(), "import circles:\n{failures}");
}

/// Each circle issue 22 untied, put back in memory (one path in the lower module naming
/// the upper, written the ways the tree once had them), is found.
#[test]
fn planted_circles_are_found() {
    let plants: [(&str, &str, &str, &[&str]); 6] = [
        (
            "check",
            "incremental.rs",
            "use crate::lockstep::Lockstep;\n",
            &["incremental", "lockstep"],
        ),
        (
            "kcore",
            "state/mod.rs",
            "use crate::{consts::*, trap::Exports};\n",
            &["state", "trap"],
        ),
        (
            "kcore",
            "state/mod.rs",
            "fn f() -> usize {\n    crate::vm_info::VCPU_PER_VM\n}\n",
            &["state", "vm_info"],
        ),
        (
            "kcore",
            "mutants.rs",
            "const G: u64 = crate::smmu_hw::STREAM_GROUPS;\n",
            &["mutants", "smmu_hw"],
        ),
        (
            "sim",
            "scenario.rs",
            "#[cfg(test)]\nmod t {\n    use crate::host::HostMacro;\n}\n",
            &["host", "scenario"],
        ),
        (
            "el2",
            "hw/percpu.rs",
            "const X: usize = crate::kcore_glue::KCPU_X;\n",
            &["hw", "kcore_glue"],
        ),
    ];
    for (krate, file, line, want) in plants {
        let mut files = sources(krate);
        let f = files.iter_mut().find(|(_, rel, _)| rel == file).unwrap();
        f.2.push_str(line);
        let g = graph(&files);
        let circles = layers(&g).expect_err("the planted circle is found");
        let all: BTreeSet<&str> = circles.iter().flatten().map(String::as_str).collect();
        for m in want {
            assert!(all.contains(m), "{krate}: {m} not in {circles:?}");
        }
        println!(
            "{krate} with `{}` planted in {file}:\n{}",
            line.trim(),
            explain(&g, &circles)
        );
    }
}

#[test]
fn parser_sees_paths_not_text() {
    let src = r#"
use crate::{a::{X, Y}, b as _, self};
// use crate::c;
/* crate::d */
const S: &str = "crate::e";
const R: &str = r"crate::f";
fn g<'a>(x: &'a u8) -> char { let _ = crate::h::Z; '"' }
macro_rules! m { () => { $crate::i } }
"#;
    let mods = ["top", "a", "b", "c", "d", "e", "f", "h", "i"];
    let mut files = vec![("top".to_string(), "top.rs".to_string(), src.to_string())];
    files.extend(
        mods[1..]
            .iter()
            .map(|m| (m.to_string(), format!("{m}.rs"), String::new())),
    );
    let g = graph(&files);
    let used: Vec<&str> = g["top"].keys().map(String::as_str).collect();
    assert_eq!(used, ["a", "b", "h"]);
}
