//! Compiles a trusted set into the lookup structure the XDP program reads
//! (`gate_common::lookup`): a cuckoo table on the /32, then lists or tries.

use std::collections::HashMap;

use gate_common::lookup::{
    Bucket, ListEntry, LookupHeader, Node, Store, HDR_SHORT, HDR_VALID, LEAVES_PER_WORD,
    LIST_DEFAULT_SHIFT, LIST_INDEX_MASK, LIST_LEN_SHIFT, LIST_MAX, LV_ALLOW, LV_DENY, LV_NONE,
    TAG_LIST, TAG_SHIFT, TAG_TRIE, TAG_VERDICT, TRIE_INDEX_MASK,
};

use crate::model::prefixes::{PrefixSet, Verdict};

mod capacity;
mod cuckoo;

pub use capacity::Capacity;
use cuckoo::cuckoo;
pub(crate) use cuckoo::Table;

/// Why a set was not compiled (the datapath then uses the LPM trie).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error(
        "the compiled lookup needs {needed} {what}, the gate was created with room for {capacity}"
    )]
    Full {
        what: &'static str,
        needed: u64,
        capacity: u32,
    },
}

/// One compiled copy, ready to be written into a copy's arrays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    pub header: LookupHeader,
    pub buckets: Vec<Bucket>,
    pub lists: Vec<ListEntry>,
    pub nodes: Vec<Node>,
    pub leaves: Vec<u64>,
}

/// A prefix as the compiler handles it: address, length, `LV_*` verdict.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pfx {
    addr: u128,
    len: u8,
    verdict: u32,
}

impl Pfx {
    pub(crate) fn of(e: &crate::model::prefixes::PrefixEntry) -> Pfx {
        Pfx {
            addr: u128::from(e.prefix.network()),
            len: e.prefix.prefix_len(),
            verdict: lv(e.verdict),
        }
    }
}

fn lv(v: Verdict) -> u32 {
    match v {
        Verdict::Allow => LV_ALLOW,
        Verdict::Deny => LV_DENY,
    }
}

fn byte(addr: u128, k: usize) -> usize {
    ((addr >> (8 * (15 - k))) & 0xff) as usize
}

/// Prefixes shorter than /32, by length, keyed by their top bits.
#[derive(Clone, Debug, Default)]
pub(crate) struct Short {
    by_len: Vec<HashMap<u32, u32>>,
}

impl Short {
    fn insert(&mut self, p: &Pfx) {
        if self.by_len.is_empty() {
            self.by_len = vec![HashMap::new(); 32];
        }
        let top = (p.addr >> 96) as u32;
        let k = if p.len == 0 { 0 } else { top >> (32 - p.len) };
        self.by_len[p.len as usize].insert(k, p.verdict);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_len.iter().all(HashMap::is_empty)
    }

    /// The verdict of the longest of them covering the /32 `key`.
    pub(crate) fn covering(&self, key: u32) -> u32 {
        for (len, m) in self.by_len.iter().enumerate().rev() {
            let k = if len == 0 { 0 } else { key >> (32 - len) };
            if let Some(v) = m.get(&k) {
                return *v;
            }
        }
        LV_NONE
    }
}

/// `set` split into its short prefixes and its /32 groups (each group's
/// prefixes sorted by address).
pub(crate) fn split(set: &PrefixSet) -> (Short, Vec<(u32, Vec<Pfx>)>) {
    let mut short = Short::default();
    let mut groups: Vec<(u32, Vec<Pfx>)> = Vec::new();
    for e in set.iter() {
        let p = Pfx::of(e);
        if p.len < 32 {
            short.insert(&p);
            continue;
        }
        // The set is sorted by address: a /32's prefixes are adjacent.
        let top = (p.addr >> 96) as u32;
        match groups.last_mut() {
            Some((k, v)) if *k == top => v.push(p),
            _ => groups.push((top, vec![p])),
        }
    }
    (short, groups)
}

/// Compiles one /32 group (`pfx` sorted by address, all /32 or longer)
/// into `c`'s lists or a new trie, appended; returns its slot value.
pub(crate) fn group_value(
    c: &mut Compiled,
    mut pfx: Vec<Pfx>,
    mut default: u32,
) -> Result<u32, CompileError> {
    if pfx.first().is_some_and(|p| p.len == 32) {
        default = pfx.remove(0).verdict;
    }
    Ok(if pfx.is_empty() {
        (TAG_VERDICT << TAG_SHIFT) | default
    } else if pfx.len() <= LIST_MAX {
        let first = c.lists.len() as u32;
        if first + LIST_MAX as u32 > LIST_INDEX_MASK {
            return Err(full("list entries", u64::from(first), LIST_INDEX_MASK));
        }
        // Longest first: the first match is the longest.
        pfx.sort_by_key(|p| std::cmp::Reverse(p.len));
        for p in &pfx {
            c.lists.push(list_entry(p));
        }
        (TAG_LIST << TAG_SHIFT)
            | (default << LIST_DEFAULT_SHIFT)
            | (((pfx.len() - 1) as u32) << LIST_LEN_SHIFT)
            | first
    } else {
        let root = c.nodes.len() as u32;
        if root > TRIE_INDEX_MASK {
            return Err(full("trie nodes", u64::from(root), TRIE_INDEX_MASK));
        }
        // A trie's leaves start on a word of their own, so a trie is
        // self-contained: nodes and leaf words in two ranges.
        let mut leaves = Leaves {
            values: Vec::new(),
            offset: c.leaves.len() as u32 * LEAVES_PER_WORD,
        };
        c.nodes.push(Node::default());
        fill(&mut c.nodes, &mut leaves, root as usize, &pfx, 0, default);
        c.leaves.extend(pack_leaves(&leaves.values));
        (TAG_TRIE << TAG_SHIFT) | root
    })
}

/// Compiles `set` within `cap`.
pub fn compile(set: &PrefixSet, cap: &Capacity) -> Result<Compiled, CompileError> {
    Ok(compile_table(set, cap)?.0)
}

/// As [`compile`], with the cuckoo table's state for later inserts.
pub(crate) fn compile_table(
    set: &PrefixSet,
    cap: &Capacity,
) -> Result<(Compiled, Table, Short), CompileError> {
    let (short, groups) = split(set);
    let mut c = Compiled::default();
    let mut slots: Vec<(u32, u32)> = Vec::with_capacity(groups.len());
    for (key, pfx) in groups {
        let value = group_value(&mut c, pfx, short.covering(key))?;
        slots.push((key, value));
    }
    let table = cuckoo(&slots, cap.buckets)?;
    c.buckets = table.buckets.clone();
    check(c.lists.len(), "list entries", cap.lists)?;
    check(c.nodes.len(), "trie nodes", cap.nodes)?;
    check(c.leaves.len(), "leaf words", cap.leaf_words)?;
    c.header = LookupHeader {
        flags: HDR_VALID | if short.is_empty() { 0 } else { HDR_SHORT },
        bucket_mask: c.buckets.len() as u32 - 1,
        groups: slots.len() as u32,
        lists: c.lists.len() as u32,
        nodes: c.nodes.len() as u32,
        leaf_words: c.leaves.len() as u32,
    };
    Ok((c, table, short))
}

pub(super) fn full(what: &'static str, needed: u64, capacity: u32) -> CompileError {
    CompileError::Full {
        what,
        needed,
        capacity,
    }
}

fn check(n: usize, what: &'static str, capacity: u32) -> Result<(), CompileError> {
    if n > capacity as usize {
        return Err(full(what, n as u64, capacity));
    }
    Ok(())
}

fn list_entry(p: &Pfx) -> ListEntry {
    let mask = if p.len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(p.len))
    };
    let a = p.addr & mask;
    ListEntry {
        words: [(a >> 64) as u32, (a >> 32) as u32, a as u32],
        meta: u32::from(p.len) | (p.verdict << 8),
    }
}

/// Leaf verdicts of one trie, in the order its nodes number them, from
/// leaf number `offset` of the copy.
struct Leaves {
    values: Vec<u32>,
    offset: u32,
}

/// Leaf verdicts packed 2 bits each, `LEAVES_PER_WORD` to a word.
fn pack_leaves(values: &[u32]) -> Vec<u64> {
    let mut words = Vec::with_capacity(values.len().div_ceil(LEAVES_PER_WORD as usize));
    for chunk in values.chunks(LEAVES_PER_WORD as usize) {
        let mut w = 0u64;
        for (i, v) in chunk.iter().enumerate() {
            w |= u64::from(*v) << (2 * i);
        }
        words.push(w);
    }
    words
}

/// Fills node `at` (depth `depth`, covering the /(32 + 8 depth) that all
/// of `pfx` lie in) and, below it, its children; `default` is the longest
/// match of the prefixes above it. `pfx` are sorted by address.
fn fill(
    nodes: &mut Vec<Node>,
    leaves: &mut Leaves,
    at: usize,
    pfx: &[Pfx],
    depth: usize,
    default: u32,
) {
    let k = 4 + depth;
    let edge = 40 + 8 * depth as u8; // a prefix this long ends in this node
    let mut paint = [default; 256];
    let mut here: Vec<&Pfx> = pfx.iter().filter(|p| p.len <= edge).collect();
    here.sort_by_key(|p| p.len);
    for p in here {
        let start = byte(p.addr, k);
        let n = 1usize << (edge - p.len);
        paint[start..start + n].fill(p.verdict);
    }
    // Deeper prefixes, by position (adjacent: sorted by address).
    let mut below: Vec<(usize, Vec<Pfx>)> = Vec::new();
    for p in pfx.iter().filter(|p| p.len > edge) {
        let pos = byte(p.addr, k);
        match below.last_mut() {
            Some((q, v)) if *q == pos => v.push(*p),
            _ => below.push((pos, vec![*p])),
        }
    }
    let mut node = Node {
        child_base: nodes.len() as u32,
        ..Node::default()
    };
    for (pos, _) in &below {
        node.child[pos >> 6] |= 1 << (pos & 63);
    }
    let mut last: Option<u32> = None;
    let leaf_base = leaves.offset as usize + leaves.values.len();
    for (pos, v) in paint.iter().enumerate() {
        if node.child[pos >> 6] >> (pos & 63) & 1 != 0 {
            continue;
        }
        if last != Some(*v) {
            node.leaf[pos >> 6] |= 1 << (pos & 63);
            leaves.values.push(*v);
            last = Some(*v);
        }
    }
    node.leaf_base = leaf_base as u32;
    node.seal();
    let base = nodes.len();
    nodes.extend(std::iter::repeat_n(Node::default(), below.len()));
    nodes[at] = node;
    for (i, (pos, sub)) in below.iter().enumerate() {
        fill(nodes, leaves, base + i, sub, depth + 1, paint[*pos]);
    }
}

impl Store for Compiled {
    fn bucket(&self, i: u32) -> Option<&Bucket> {
        self.buckets.get(i as usize)
    }
    fn list(&self, i: u32) -> Option<&ListEntry> {
        self.lists.get(i as usize)
    }
    fn node(&self, i: u32) -> Option<&Node> {
        self.nodes.get(i as usize)
    }
    fn leaf_word(&self, i: u32) -> Option<u64> {
        self.leaves.get(i as usize).copied()
    }
}

#[cfg(test)]
mod tests;
