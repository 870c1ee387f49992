//! The cuckoo table on the /32 as user space builds and changes it: two
//! choices per key, 8 slots a bucket, evictions by a xorshift walk.

use gate_common::lookup::{self as lk, Bucket, BUCKET_SLOTS};

use super::{full, CompileError};

/// The cuckoo table for `slots` (distinct keys): the smallest power of two
/// of buckets, up to `capacity`, into which they all fit.
pub(super) fn cuckoo(slots: &[(u32, u32)], capacity: u32) -> Result<Table, CompileError> {
    let max = if capacity.is_power_of_two() {
        capacity
    } else {
        capacity.next_power_of_two() / 2
    };
    let mut n = ((slots.len() as u64 * 4 / 3 / BUCKET_SLOTS as u64).max(1))
        .next_power_of_two()
        .min(u64::from(max.max(1))) as u32;
    loop {
        let mut t = Table::new(n);
        if slots.iter().all(|(k, v)| t.insert(*k, *v)) {
            t.dirty.clear();
            return Ok(t);
        }
        if n >= max {
            return Err(full("cuckoo buckets", u64::from(n) * 2, capacity));
        }
        n *= 2;
    }
}

/// A cuckoo table as user space builds and changes it (nobody reads this
/// copy; the kernel's copies get the buckets it marks dirty).
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub(crate) buckets: Vec<Bucket>,
    rng: u64,
    /// Buckets written since the last `take_dirty`.
    dirty: Vec<u32>,
}

/// Evictions before an insert gives up (the table is then grown).
const MAX_KICKS: usize = 500;

impl Table {
    pub(crate) fn new(n: u32) -> Table {
        Table {
            buckets: vec![Bucket::default(); n as usize],
            rng: 0x9e37_79b9_7f4a_7c15,
            dirty: Vec::new(),
        }
    }

    /// The buckets written since the last call, each once, in order.
    pub(crate) fn take_dirty(&mut self) -> Vec<u32> {
        let mut d = std::mem::take(&mut self.dirty);
        d.sort_unstable();
        d.dedup();
        d
    }

    pub(crate) fn contains(&self, key: u32) -> bool {
        self.find(key).is_some()
    }

    fn find(&self, key: u32) -> Option<(usize, usize)> {
        self.choices(key).into_iter().find_map(|c| {
            let b = &self.buckets[c];
            (0..BUCKET_SLOTS)
                .find(|s| b.keys[*s] == key && b.values[*s] != 0)
                .map(|s| (c, s))
        })
    }

    /// Sets `key`'s value, in place when it is there; false when an insert
    /// found no room.
    pub(crate) fn set(&mut self, key: u32, value: u32) -> bool {
        match self.find(key) {
            Some((c, s)) => {
                self.buckets[c].values[s] = value;
                self.dirty.push(c as u32);
                true
            }
            None => self.insert(key, value),
        }
    }

    /// Removes `key`; false when it is not there.
    pub(crate) fn remove(&mut self, key: u32) -> bool {
        match self.find(key) {
            Some((c, s)) => {
                self.buckets[c].keys[s] = 0;
                self.buckets[c].values[s] = 0;
                self.dirty.push(c as u32);
                true
            }
            None => false,
        }
    }

    fn choices(&self, key: u32) -> [usize; 2] {
        let mask = self.buckets.len() as u32 - 1;
        let (a, b) = lk::bucket_hashes(key);
        [(a & mask) as usize, (b & mask) as usize]
    }

    fn free_slot(&self, b: usize) -> Option<usize> {
        self.buckets[b].values.iter().position(|v| *v == 0)
    }

    /// Puts `key` in one of its two buckets, moving others to their other
    /// bucket to make room; false when that fails.
    pub(crate) fn insert(&mut self, mut key: u32, mut value: u32) -> bool {
        let mut b = self.choices(key)[0];
        for _ in 0..MAX_KICKS {
            for c in self.choices(key) {
                if let Some(s) = self.free_slot(c) {
                    self.buckets[c].keys[s] = key;
                    self.buckets[c].values[s] = value;
                    self.dirty.push(c as u32);
                    return true;
                }
            }
            // Evict a random slot of one of the two buckets.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let s = (self.rng % BUCKET_SLOTS as u64) as usize;
            let [c0, c1] = self.choices(key);
            b = if b == c0 { c1 } else { c0 };
            let (k, v) = (self.buckets[b].keys[s], self.buckets[b].values[s]);
            self.buckets[b].keys[s] = key;
            self.buckets[b].values[s] = value;
            self.dirty.push(b as u32);
            key = k;
            value = v;
        }
        false
    }
}
