//! The compiled set as a writer keeps it between updates: an update recompiles
//! only the /32 groups it touches and yields the parts of the arrays that changed.
//!
//! A recompiled group's list or trie is appended to fresh space (the old one
//! becomes garbage, unreachable once its slot points elsewhere) and its
//! cuckoo slot rewritten; when the space runs out, or a prefix shorter than
//! /32 changes (it reaches into many groups), the caller compiles afresh,
//! which also compacts.

use std::collections::BTreeSet;

use gate_common::lookup::{Bucket, ListEntry, LookupHeader, Node, Store, HDR_SHORT, HDR_VALID};
use ipnet::Ipv6Net;

use super::compile::{
    compile_table, group_value, Capacity, CompileError, Compiled, Pfx, Short, Table,
};
use crate::model::prefixes::PrefixSet;

/// A compiled set and the state to change it.
#[derive(Clone, Debug)]
pub struct Live {
    /// Lists, nodes, leaves and the header; the buckets live in `table`.
    c: Compiled,
    table: Table,
    short: Short,
    cap: Capacity,
}

/// What to write into a copy: the header always; the buckets listed (all
/// when `None`), and the lists, nodes and leaf words from the given index on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub buckets: Option<Vec<u32>>,
    pub lists_from: usize,
    pub nodes_from: usize,
    pub leaves_from: usize,
}

impl Patch {
    /// Everything: a copy of unknown content gets the whole structure.
    pub fn full() -> Patch {
        Patch {
            buckets: None,
            lists_from: 0,
            nodes_from: 0,
            leaves_from: 0,
        }
    }
}

/// Why an update cannot be applied group by group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rebuild {
    /// A prefix shorter than /32 changed.
    Short,
    /// The appended space or the cuckoo table is full.
    Full,
}

impl Live {
    /// Compiles `set` from scratch.
    pub fn build(set: &PrefixSet, cap: &Capacity) -> Result<Live, CompileError> {
        let (mut c, table, short) = compile_table(set, cap)?;
        c.buckets = Vec::new();
        Ok(Live {
            c,
            table,
            short,
            cap: *cap,
        })
    }

    pub fn header(&self) -> LookupHeader {
        self.c.header
    }

    pub fn capacity(&self) -> &Capacity {
        &self.cap
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.table.buckets
    }

    pub fn lists(&self) -> &[ListEntry] {
        &self.c.lists
    }

    pub fn nodes(&self) -> &[Node] {
        &self.c.nodes
    }

    pub fn leaves(&self) -> &[u64] {
        &self.c.leaves
    }

    /// Recompiles the /32 groups of `changed` prefixes from `set` (the set
    /// after the change). On `Err` this value is spent: compile afresh.
    pub fn apply<'p>(
        &mut self,
        set: &PrefixSet,
        changed: impl IntoIterator<Item = &'p Ipv6Net>,
    ) -> Result<Patch, Rebuild> {
        let mut keys = BTreeSet::new();
        for p in changed {
            if p.prefix_len() < 32 {
                return Err(Rebuild::Short);
            }
            keys.insert((u128::from(p.network()) >> 96) as u32);
        }
        let patch_from = (self.c.lists.len(), self.c.nodes.len(), self.c.leaves.len());
        for key in keys {
            let net = Ipv6Net::new((u128::from(key) << 96).into(), 32).expect("/32");
            let pfx: Vec<Pfx> = set.within(net).map(Pfx::of).collect();
            let had = self.table.contains(key);
            if pfx.is_empty() {
                self.table.remove(key);
                self.c.header.groups -= u32::from(had);
                continue;
            }
            let value = group_value(&mut self.c, pfx, self.short.covering(key))
                .map_err(|_| Rebuild::Full)?;
            if !self.table.set(key, value) {
                return Err(Rebuild::Full);
            }
            self.c.header.groups += u32::from(!had);
        }
        let fits = self.c.lists.len() <= self.cap.lists as usize
            && self.c.nodes.len() <= self.cap.nodes as usize
            && self.c.leaves.len() <= self.cap.leaf_words as usize;
        if !fits {
            return Err(Rebuild::Full);
        }
        let h = &mut self.c.header;
        h.flags = HDR_VALID | if self.short.is_empty() { 0 } else { HDR_SHORT };
        h.lists = self.c.lists.len() as u32;
        h.nodes = self.c.nodes.len() as u32;
        h.leaf_words = self.c.leaves.len() as u32;
        Ok(Patch {
            buckets: Some(self.table.take_dirty()),
            lists_from: patch_from.0,
            nodes_from: patch_from.1,
            leaves_from: patch_from.2,
        })
    }
}

impl Store for Live {
    fn bucket(&self, i: u32) -> Option<&Bucket> {
        self.table.buckets.get(i as usize)
    }
    fn list(&self, i: u32) -> Option<&ListEntry> {
        self.c.lists.get(i as usize)
    }
    fn node(&self, i: u32) -> Option<&Node> {
        self.c.nodes.get(i as usize)
    }
    fn leaf_word(&self, i: u32) -> Option<u64> {
        self.c.leaves.get(i as usize).copied()
    }
}
