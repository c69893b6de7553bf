//! `ZMap.t`: the seed's total maps from integers to values (RData.md, spec-digest §0).
//!
//! A map is a default value plus explicit entries; reading an absent key yields the default.
//! The representation is persistent (`imbl::OrdMap`), so a functional update `m # k == v`
//! copies in O(log n) and every older snapshot stays valid, which is what the seed's
//! `adt'`, `adt1`, ... chains need. Entries equal to the default are never stored, so two
//! maps are equal (`==`) exactly when they read the same at every key.

use crate::Z;
use imbl::OrdMap;
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ZMap<T: Clone> {
    dflt: T,
    m: OrdMap<Z, T>,
}

impl<T: Clone + PartialEq> ZMap<T> {
    /// `ZMap.init v`: every key reads `v`.
    pub fn init(dflt: T) -> Self {
        ZMap {
            dflt,
            m: OrdMap::new(),
        }
    }

    /// `k @ m`.
    pub fn get(&self, k: Z) -> &T {
        self.m.get(&k).unwrap_or(&self.dflt)
    }

    /// `m # k == v` (functional update).
    #[must_use]
    pub fn set(&self, k: Z, v: T) -> Self {
        let mut out = self.clone();
        out.set_mut(k, v);
        out
    }

    /// In-place form of [`ZMap::set`].
    pub fn set_mut(&mut self, k: Z, v: T) {
        if v == self.dflt {
            self.m.remove(&k);
        } else {
            self.m.insert(k, v);
        }
    }

    /// Read-modify-write of one entry (nested-map updates in the seed).
    #[must_use]
    pub fn update(&self, k: Z, f: impl FnOnce(T) -> T) -> Self {
        let v = f(self.get(k).clone());
        self.set(k, v)
    }

    pub fn default_value(&self) -> &T {
        &self.dflt
    }

    /// Explicit entries (those differing from the default), in key order.
    pub fn entries(&self) -> impl Iterator<Item = (Z, &T)> + '_ {
        self.m.iter().map(|(k, v)| (*k, v))
    }

    /// Explicit entries whose key lies in `[lo, hi)`.
    pub fn range(&self, lo: Z, hi: Z) -> impl Iterator<Item = (Z, &T)> + '_ {
        self.m.range(lo..hi).map(|(k, v)| (*k, v))
    }

    /// Number of explicit entries.
    pub fn len(&self) -> usize {
        self.m.len()
    }

    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// The keys at which `self` and `other` read differently, in key order (among the keys
    /// either names, if their defaults differ). Cheap when one map is a functional update
    /// of the other: shared parts are skipped unvisited.
    pub fn changed_keys(&self, other: &Self) -> Vec<Z> {
        use imbl::ordmap::DiffItem;
        if self.dflt != other.dflt {
            let mut keys: Vec<Z> = self.m.keys().chain(other.m.keys()).copied().collect();
            keys.sort_unstable();
            keys.dedup();
            keys.retain(|k| self.get(*k) != other.get(*k));
            return keys;
        }
        self.m
            .diff(&other.m)
            .map(|d| match d {
                DiffItem::Add(k, _) | DiffItem::Remove(k, _) => *k,
                DiffItem::Update { new: (k, _), .. } => *k,
            })
            .collect()
    }
}

impl<T: Clone + fmt::Debug> fmt::Debug for ZMap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZMap")
            .field("default", &self.dflt)
            .field("entries", &self.m)
            .finish()
    }
}

impl<T: Clone + PartialEq + Default> Default for ZMap<T> {
    fn default() -> Self {
        ZMap::init(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_read_default_and_updates_are_functional() {
        let m = ZMap::init(7i128);
        let m2 = m.set(3, 9);
        assert_eq!(*m.get(3), 7);
        assert_eq!(*m2.get(3), 9);
        assert_eq!(*m2.get(-5), 7);
    }

    #[test]
    fn changed_keys_are_exactly_the_differing_ones() {
        let a: ZMap<i128> = (0..1000).fold(ZMap::init(0), |m, k| m.set(k, k + 1));
        let b = a.set(5, 0).set(700, 9).set(2000, 3);
        assert_eq!(a.changed_keys(&b), vec![5, 700, 2000]);
        assert_eq!(b.changed_keys(&a), vec![5, 700, 2000]);
        assert!(a.changed_keys(&a.clone()).is_empty());
    }

    #[test]
    fn equality_is_extensional() {
        let a = ZMap::init(0i128).set(1, 5).set(1, 0);
        let b = ZMap::init(0i128);
        assert_eq!(a, b);
        assert_ne!(a.set(2, 1), b);
        assert_ne!(ZMap::init(1i128), b);
    }
}
