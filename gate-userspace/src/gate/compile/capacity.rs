//! How big a gate's compiled arrays and records are: the object's default,
//! room for a number of prefixes, or sized from a set with headroom.

use gate_common::lookup::{
    self as lk, Bucket, ListEntry, Node, BUCKET_SLOTS, LIST_INDEX_MASK, TRIE_INDEX_MASK,
};

use super::compile;
use crate::model::prefixes::PrefixSet;

/// Elements of each array of one compiled copy, as pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    pub buckets: u32,
    pub lists: u32,
    pub nodes: u32,
    pub leaf_words: u32,
    /// Slots of each half's record (see `gate_common::record`).
    pub record: u32,
}

impl Default for Capacity {
    /// The object's sizes (about 3.4 MB a copy).
    fn default() -> Capacity {
        Capacity {
            buckets: lk::DEFAULT_BUCKETS,
            lists: lk::DEFAULT_LISTS,
            nodes: lk::DEFAULT_NODES,
            leaf_words: lk::DEFAULT_LEAF_WORDS,
            record: gate_common::record::DEFAULT_RECORD_SLOTS,
        }
    }
}

impl Capacity {
    /// Room for `n` prefixes, each in a /32 of its own (buckets at most
    /// 75% full) or in lists, with trie nodes for a quarter of them.
    pub fn for_prefixes(n: usize) -> Capacity {
        let n = n.max(1024) as u64;
        let clamp = |v: u64| v.min(u64::from(LIST_INDEX_MASK)) as u32;
        Capacity {
            buckets: clamp((n * 4 / 3 / BUCKET_SLOTS as u64).next_power_of_two()),
            lists: clamp(n),
            nodes: clamp(n / 4),
            leaf_words: clamp(n / 4),
            record: record_slots(n),
        }
    }

    /// Room for `set` compiled, and `headroom` times as much again (0.25:
    /// a quarter more).
    pub fn for_set(set: &PrefixSet, headroom: f64) -> Capacity {
        let unbounded = Capacity {
            buckets: 1 << 30,
            lists: LIST_INDEX_MASK,
            nodes: TRIE_INDEX_MASK,
            leaf_words: u32::MAX,
            record: u32::MAX,
        };
        let grow = |v: u32| {
            ((f64::from(v) * (1.0 + headroom)) as u64).clamp(1024, u64::from(TRIE_INDEX_MASK))
                as u32
        };
        match compile(set, &unbounded) {
            Ok(c) => Capacity {
                buckets: ((f64::from(c.header.groups) * (1.0 + headroom)) as u64 * 4
                    / 3
                    / BUCKET_SLOTS as u64)
                    .max(1)
                    .next_power_of_two() as u32,
                lists: grow(c.header.lists).min(LIST_INDEX_MASK),
                nodes: grow(c.header.nodes),
                leaf_words: grow(c.header.leaf_words),
                record: record_slots(((set.len() as f64) * (1.0 + headroom)) as u64),
            },
            Err(_) => Capacity::for_prefixes(set.len()),
        }
    }

    /// Each array at least as large as in `other`.
    pub fn at_least(&self, other: &Capacity) -> Capacity {
        Capacity {
            buckets: self.buckets.max(other.buckets),
            lists: self.lists.max(other.lists),
            nodes: self.nodes.max(other.nodes),
            leaf_words: self.leaf_words.max(other.leaf_words),
            record: self.record.max(other.record),
        }
    }

    /// Kernel memory of one half's record, in bytes.
    pub fn record_bytes(&self) -> u64 {
        u64::from(self.record) * std::mem::size_of::<gate_common::record::RecordSlot>() as u64
    }

    /// Kernel memory of one copy, in bytes.
    pub fn bytes(&self) -> u64 {
        let size = |n: u32, bytes: usize| u64::from(n) * bytes as u64;
        size(self.buckets, std::mem::size_of::<Bucket>())
            + size(self.lists, std::mem::size_of::<ListEntry>())
            + size(self.nodes, std::mem::size_of::<Node>())
            + size(self.leaf_words, 8)
    }
}

/// Record slots for `n` entries (at least 1,024, at most 3/4 full).
fn record_slots(n: u64) -> u32 {
    let den = gate_common::record::RECORD_LOAD_NUM;
    let num = gate_common::record::RECORD_LOAD_DEN;
    (n.max(1024) * num).div_ceil(den).min(u64::from(u32::MAX)) as u32
}
