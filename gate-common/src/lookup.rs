//! Layout of the compiled lookup: the structure user space builds from the
//! trusted set and the XDP program reads from BPF arrays instead of the LPM trie.
//!
//! A lookup hashes the source's top 32 bits into a 2-choice cuckoo table of
//! [`Bucket`]s (one cache line each). The slot's value is a verdict for the
//! whole /32, a short list of [`ListEntry`]s (longest first) or the root of
//! a compressed multibit trie of [`Node`]s (8-bit strides, Poptrie-style
//! bitmaps) whose leaves are packed 2-bit verdicts. Everything is leaf-pushed:
//! the first answer found is the longest match. Prefixes shorter than /32 are
//! pushed into every /32 group under them; a /32 without a group falls back
//! to the LPM trie when [`HDR_SHORT`] says such prefixes exist.

/// `BPF_F_MMAPABLE`: the copies' arrays are written through mmap.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// Capacity of each copy's arrays in the object (about 3.4 MB a copy,
/// enough for some 50,000 prefixes); the loader sizes them for the
/// capacity asked for when it creates the gate.
pub const DEFAULT_BUCKETS: u32 = 16_384;
pub const DEFAULT_LISTS: u32 = 65_536;
pub const DEFAULT_NODES: u32 = 16_384;
pub const DEFAULT_LEAF_WORDS: u32 = 16_384;

/// Slots per cuckoo bucket: 8 keys then 8 values, 64 bytes.
pub const BUCKET_SLOTS: usize = 8;
/// Prefixes a list holds at most; a busier /32 gets a trie.
pub const LIST_MAX: usize = 4;
/// Trie levels below the /32: bytes 4 to 15 of the address.
pub const TRIE_LEVELS: usize = 12;

/// `LookupHeader::flags`: this copy holds a complete compiled set (else
/// the datapath uses the LPM trie of the same half).
pub const HDR_VALID: u32 = 1 << 0;
/// `LookupHeader::flags`: the set has prefixes shorter than /32; a /32
/// without a group is answered by the LPM trie.
pub const HDR_SHORT: u32 = 1 << 1;

/// `LookupHeader::flags`, for user space only (the program ignores it):
/// this half keeps its set in its record (`WG_RECORD_N`, see `record`) and
/// its LPM trie holds only the prefixes shorter than /32. Set only with
/// `HDR_VALID`; without it the trie holds the whole set.
pub const HDR_RECORD: u32 = 1 << 2;

/// Verdicts inside the compiled structure (2 bits).
pub const LV_NONE: u32 = 0;
pub const LV_ALLOW: u32 = 1;
pub const LV_DENY: u32 = 2;

/// Slot value tags (bits 31-30). 0 marks an empty slot.
pub const TAG_SHIFT: u32 = 30;
pub const TAG_VERDICT: u32 = 1;
pub const TAG_LIST: u32 = 2;
pub const TAG_TRIE: u32 = 3;
/// A list value: default verdict (bits 29-28), length - 1 (bits 27-26),
/// index of the first entry (bits 25-0).
pub const LIST_DEFAULT_SHIFT: u32 = 28;
pub const LIST_LEN_SHIFT: u32 = 26;
pub const LIST_INDEX_MASK: u32 = (1 << 26) - 1;
/// A trie value: index of the root node (bits 29-0).
pub const TRIE_INDEX_MASK: u32 = (1 << 30) - 1;

/// Per copy, element `copy` of `WG_LOOKUP`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupHeader {
    /// `HDR_VALID`, `HDR_SHORT`.
    pub flags: u32,
    /// Buckets in use minus one (a power of two minus one).
    pub bucket_mask: u32,
    /// /32 groups, list entries, trie nodes, leaf words in use (for inspect).
    pub groups: u32,
    pub lists: u32,
    pub nodes: u32,
    pub leaf_words: u32,
}

/// One cache line of the cuckoo table: the /32 keys (host order), then
/// their values (0 = empty slot).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub keys: [u32; BUCKET_SLOTS],
    pub values: [u32; BUCKET_SLOTS],
}

/// One prefix of a list: address bits 32-127 as three host-order words
/// (masked to the prefix), and `meta` = prefix length | verdict << 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListEntry {
    pub words: [u32; 3],
    pub meta: u32,
}

/// A trie node for one byte of the address: `child` marks the positions
/// with a node below (numbered from `child_base` in position order), `leaf`
/// the positions where a run of equal leaf verdicts starts (numbered from
/// `leaf_base`); positions with a child continue the run before them.
/// `child_before[w]` and `leaf_before[w]` count the bits set in the words
/// before word `w` (see [`Node::seal`]), so a rank is one popcount.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub child: [u64; 4],
    pub leaf: [u64; 4],
    pub child_base: u32,
    pub leaf_base: u32,
    pub child_before: [u8; 4],
    pub leaf_before: [u8; 4],
}

impl Node {
    /// Fills `child_before` and `leaf_before` from the bitmaps (at most
    /// 192 bits precede the last word, so a byte holds each count).
    pub fn seal(&mut self) {
        let (mut c, mut l) = (0u32, 0u32);
        let mut k = 0;
        while k < 4 {
            self.child_before[k] = c as u8;
            self.leaf_before[k] = l as u8;
            c += popcount64(self.child[k]);
            l += popcount64(self.leaf[k]);
            k += 1;
        }
    }
}

/// Leaf verdicts per `WG_LEAVES_*` word (2 bits each).
pub const LEAVES_PER_WORD: u32 = 32;

/// The two hash choices of a /32 key, before masking.
#[inline(always)]
pub fn bucket_hashes(key: u32) -> (u32, u32) {
    (fmix32(key), fmix32(key ^ SECOND_HASH))
}

/// What the key is mixed with for its second choice.
const SECOND_HASH: u32 = 0x5bd1_e995;

/// MurmurHash3's finaliser.
#[inline(always)]
pub const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Population count in software (BPF has no instruction for it).
#[inline(always)]
pub const fn popcount64(mut x: u64) -> u32 {
    x -= (x >> 1) & 0x5555_5555_5555_5555;
    x = (x & 0x3333_3333_3333_3333) + ((x >> 2) & 0x3333_3333_3333_3333);
    x = (x + (x >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (x.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

/// Set bits of `bits` at positions `0..=pos` (pos < 256), `before[w]`
/// being the bits set in the words before word `w`: one popcount.
#[inline(always)]
pub fn rank(bits: &[u64; 4], before: &[u8; 4], pos: u32) -> u32 {
    let w = ((pos >> 6) & 3) as usize;
    // Bits 0..=pos of the word.
    let m = u64::MAX >> (63 - (pos & 63));
    before[w] as u32 + popcount64(bits[w] & m)
}

/// Whether bit `pos` (< 256) of `bits` is set.
#[inline(always)]
pub fn bit(bits: &[u64; 4], pos: u32) -> bool {
    (bits[((pos >> 6) & 3) as usize] >> (pos & 63)) & 1 != 0
}

/// Whether a list entry holds the address `w` (its bits 32-127: words 1-3).
#[inline(always)]
pub fn list_matches(e: &ListEntry, w: &Words) -> bool {
    let len = e.meta & 0xff;
    let mut k = 0;
    let mut diff = 0;
    while k < 3 {
        // The prefix's bits in word k (0 to 32), as a mask of that many
        // leading ones: shifting a 64-bit all-ones by 32 leaves none.
        let bits = len.saturating_sub(32 + 32 * k as u32).min(32);
        let m = (u64::MAX << (32 - bits)) as u32;
        diff |= (w[k + 1] & m) ^ e.words[k];
        k += 1;
    }
    diff == 0
}

/// An IPv6 address as four host-order words, word 0 holding bits 0-31:
/// what a lookup reads (the program loads them from the packet, four
/// loads, without copying the address anywhere).
pub type Words = [u32; 4];

/// The words of an address in network byte order.
#[inline(always)]
pub fn words(addr: &[u8; 16]) -> Words {
    let w = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// Byte `i` (0-15) of the address whose words are `w`.
#[inline(always)]
pub fn byte(w: &Words, i: usize) -> u32 {
    (w[(i >> 2) & 3] >> (24 - 8 * (i & 3))) & 0xff
}

/// Where a lookup reads the compiled structure: the BPF arrays of one copy
/// in the program, vectors in user space (tests, `check`).
pub trait Store {
    fn bucket(&self, i: u32) -> Option<&Bucket>;
    fn list(&self, i: u32) -> Option<&ListEntry>;
    fn node(&self, i: u32) -> Option<&Node>;
    fn leaf_word(&self, i: u32) -> Option<u64>;
}

/// What the compiled structure says about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// `LV_NONE`, `LV_ALLOW` or `LV_DENY`: the longest match's verdict.
    Verdict(u32),
    /// No /32 group holds the address: only a prefix shorter than /32 can.
    Miss,
}

/// The /32 group's slot value for `key`, 0 when there is none.
#[inline(always)]
pub fn find_slot<S: Store>(s: &S, bucket_mask: u32, key: u32) -> u32 {
    let v = slot_in(s.bucket(fmix32(key) & bucket_mask), key);
    if v != 0 {
        return v;
    }
    slot_in(s.bucket(fmix32(key ^ SECOND_HASH) & bucket_mask), key)
}

/// The value of `key`'s slot in bucket `b`, 0 when it has none.
#[inline(always)]
fn slot_in(b: Option<&Bucket>, key: u32) -> u32 {
    let Some(b) = b else {
        return 0;
    };
    let mut i = 0;
    while i < BUCKET_SLOTS {
        if b.keys[i] == key && b.values[i] != 0 {
            return b.values[i];
        }
        i += 1;
    }
    0
}

/// The longest match for the address `w` in the compiled structure. A
/// missing element (never written by a correct compiler) reads as `LV_NONE`.
#[inline(always)]
pub fn lookup<S: Store>(s: &S, bucket_mask: u32, w: &Words) -> Found {
    let val = find_slot(s, bucket_mask, w[0]);
    match val >> TAG_SHIFT {
        TAG_VERDICT => Found::Verdict(val & 3),
        TAG_LIST => Found::Verdict(lookup_list(s, val, w)),
        TAG_TRIE => Found::Verdict(lookup_trie(s, val & TRIE_INDEX_MASK, w)),
        _ => Found::Miss,
    }
}

#[inline(always)]
fn lookup_list<S: Store>(s: &S, val: u32, w: &Words) -> u32 {
    let first = val & LIST_INDEX_MASK;
    let len = ((val >> LIST_LEN_SHIFT) & 3) + 1;
    let mut i = 0;
    while i < LIST_MAX as u32 {
        if i >= len {
            break;
        }
        match s.list(first + i) {
            Some(e) => {
                if list_matches(e, w) {
                    return (e.meta >> 8) & 3;
                }
            }
            None => return LV_NONE,
        }
        i += 1;
    }
    (val >> LIST_DEFAULT_SHIFT) & 3
}

#[inline(always)]
fn lookup_trie<S: Store>(s: &S, root: u32, w: &Words) -> u32 {
    let mut idx = root;
    let mut level = 0;
    while level < TRIE_LEVELS {
        let Some(n) = s.node(idx) else {
            return LV_NONE;
        };
        let b = byte(w, 4 + level);
        if bit(&n.child, b) {
            idx = n.child_base + rank(&n.child, &n.child_before, b) - 1;
            level += 1;
            continue;
        }
        let j = n.leaf_base + rank(&n.leaf, &n.leaf_before, b) - 1;
        return match s.leaf_word(j / LEAVES_PER_WORD) {
            Some(word) => ((word >> (2 * (j % LEAVES_PER_WORD))) & 3) as u32,
            None => LV_NONE,
        };
    }
    LV_NONE
}
