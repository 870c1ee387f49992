//! Layout of a half's record: the set it holds, for user space only, while
//! its compiled copy is valid (the LPM trie then keeps only what the datapath reads).
//!
//! The record is a `BPF_F_MMAPABLE` array of [`RecordSlot`]s that user space
//! maps and manages as an open-addressing hash table (linear probing, at
//! most [`RECORD_LOAD_NUM`]/[`RECORD_LOAD_DEN`] full). The XDP program never
//! reads it. The entry count is `Meta::entries` of the half.

/// Slots of each record in the object (enough for about 50,000 prefixes,
/// 1.6 MB a half); the loader sizes it for the capacity asked for.
pub const DEFAULT_RECORD_SLOTS: u32 = 66_667;
/// A record holds at most `slots * NUM / DEN` entries.
pub const RECORD_LOAD_NUM: u64 = 3;
pub const RECORD_LOAD_DEN: u64 = 4;

/// `RecordSlot::used`: the slot holds an entry (0: empty).
pub const SLOT_USED: u8 = 1;

/// One slot of a record: a prefix (its address in network byte order, bits
/// past its length zero), its verdict and label id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordSlot {
    pub addr: [u8; 16],
    pub len: u8,
    /// `SLOT_USED` or 0.
    pub used: u8,
    /// `VERDICT_ALLOW` or `VERDICT_DENY`.
    pub verdict: u8,
    pub pad: u8,
    /// Index into the half's label table.
    pub label: u32,
}

/// Entries a record of `slots` slots holds at most.
pub const fn record_capacity(slots: u32) -> u64 {
    slots as u64 * RECORD_LOAD_NUM / RECORD_LOAD_DEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_24_bytes() {
        assert_eq!(core::mem::size_of::<RecordSlot>(), 24);
        assert_eq!(record_capacity(DEFAULT_RECORD_SLOTS), 50_000);
    }
}
