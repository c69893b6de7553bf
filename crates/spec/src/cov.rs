//! Branch probes. Every branch of a seed function carries a `cov!` probe named after the
//! function and the branch (`local_map_host.mapped`).
//! Without the `coverage` feature a probe compiles to nothing. With it, the first hit of
//! each probe in a process is appended to the file named by `COREVISOR_COV_FILE`;
//! `cargo xtask coverage` runs the spec's tests that way and compares the hits with the
//! probes found in the source, so "every `local_*` branch is reached" is a checked claim.

/// Marks a branch of a seed function (see the module doc).
#[macro_export]
macro_rules! cov {
    ($name:literal) => {
        #[cfg(feature = "coverage")]
        {
            $crate::cov::hit($name);
        }
    };
}

#[cfg(feature = "coverage")]
pub fn hit(name: &'static str) {
    use std::collections::HashSet;
    use std::io::Write;
    use std::sync::Mutex;
    static HITS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = HITS.lock().unwrap_or_else(|e| e.into_inner());
    if !guard.get_or_insert_with(HashSet::new).insert(name) {
        return;
    }
    if let Ok(path) = std::env::var("COREVISOR_COV_FILE") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{name}");
        }
    }
}
