//! Map layouts, names and constants shared by the XDP program and user space.
//! Every type here is `#[repr(C)]` and crosses the kernel boundary unchanged.
#![no_std]

pub mod lookup;
pub mod record;

/// Maximum number of protected TCP destination ports.
pub const MAX_PORTS: usize = 8;
/// Default protected port: SMTP.
pub const DEFAULT_PORT: u16 = 25;
/// How many IPv6 extension headers the program walks before it gives up.
/// A packet to a protected destination with a longer chain is dropped as
/// malformed (fail closed).
pub const MAX_EXT_HEADERS: usize = 8;
/// Maximum number of VLAN tags (802.1Q / 802.1ad) in front of the IP header.
pub const MAX_VLAN_TAGS: usize = 2;

/// Capacity of each of the two trusted-set tries (entries are not
/// preallocated: LPM tries only take memory for what they hold).
pub const TRUST_MAX_ENTRIES: u32 = 2 * 1024 * 1024;
/// Capacity of the protected-destination trie.
pub const PROTECT_MAX_ENTRIES: u32 = 1024;
/// Capacity of each generation's label table.
pub const LABELS_MAX_ENTRIES: u32 = 65_536;
/// Bytes of a label, NUL padded.
pub const LABEL_LEN: usize = 96;

/// Names of the maps, as declared in the program and pinned by name.
pub mod maps {
    pub const CONFIG: &str = "WG_CONFIG";
    pub const ACTIVE: &str = "WG_ACTIVE";
    pub const TRUST: [&str; 2] = ["WG_TRUST_0", "WG_TRUST_1"];
    pub const LABELS: [&str; 2] = ["WG_LABELS_0", "WG_LABELS_1"];
    pub const META: &str = "WG_META";
    /// Protected destinations, one trie per settings slot.
    pub const PROTECT: [&str; 2] = ["WG_PROTECT_0", "WG_PROTECT_1"];
    pub const COUNTERS: &str = "WG_COUNTERS";
    /// The compiled lookup: one header per copy, then each copy's arrays
    /// (see `lookup`); copy N goes with trie N.
    pub const LOOKUP: &str = "WG_LOOKUP";
    pub const BUCKETS: [&str; 2] = ["WG_BUCKETS_0", "WG_BUCKETS_1"];
    pub const LISTS: [&str; 2] = ["WG_LISTS_0", "WG_LISTS_1"];
    pub const NODES: [&str; 2] = ["WG_NODES_0", "WG_NODES_1"];
    pub const LEAVES: [&str; 2] = ["WG_LEAVES_0", "WG_LEAVES_1"];
    /// The record of each half's set while its copy is valid (user space
    /// only, see `record`); half N goes with trie N.
    pub const RECORD: [&str; 2] = ["WG_RECORD_0", "WG_RECORD_1"];
    /// Every map, in the order `inspect` reports them.
    pub const ALL: [&str; 21] = [
        CONFIG, ACTIVE, TRUST[0], TRUST[1], LABELS[0], LABELS[1], META, PROTECT[0], PROTECT[1],
        COUNTERS, LOOKUP, BUCKETS[0], BUCKETS[1], LISTS[0], LISTS[1], NODES[0], NODES[1],
        LEAVES[0], LEAVES[1], RECORD[0], RECORD[1],
    ];
}

/// Name of the XDP program function in the object.
pub const PROGRAM_NAME: &str = "wotgate";

/// `WG_ACTIVE`, the one word the datapath reads first: bit 0 names the trie
/// of the trusted set (`WG_TRUST_0` or `_1`), bit 1 the settings slot (the
/// `WG_CONFIG` element and the `WG_PROTECT_0` or `_1` trie). User space
/// writes the inactive half and flips its bit with one aligned store, so a
/// packet sees the old set or the new one, the old settings or the new ones.
pub const ACTIVE_TRIE: u32 = 1 << 0;
pub const ACTIVE_SETTINGS: u32 = 1 << 1;
/// `WG_CONFIG` elements: one per settings slot.
pub const CONFIG_SLOTS: u32 = 2;

/// `GateConfig::flags`: count would-be drops but pass everything.
pub const FLAG_OBSERVE: u32 = 1 << 0;
/// `GateConfig::flags`: only SYNs to destinations in the slot's
/// `WG_PROTECT_*` trie are gated.
pub const FLAG_PROTECT_DST: u32 = 1 << 1;

/// Gate-wide configuration, one element of the `WG_CONFIG` array per
/// settings slot (`ACTIVE_SETTINGS` picks the one in force).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateConfig {
    pub flags: u32,
    /// Number of valid entries in `ports`.
    pub nports: u32,
    /// Protected ports in host byte order.
    pub ports: [u16; MAX_PORTS],
}

impl GateConfig {
    pub fn is_protected_port(&self, port: u16) -> bool {
        let n = if (self.nports as usize) < MAX_PORTS {
            self.nports as usize
        } else {
            MAX_PORTS
        };
        let mut i = 0;
        while i < n {
            if self.ports[i] == port {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// An IPv6 address in network byte order: the data of the IPv6 LPM tries'
/// keys (the kernel's `struct bpf_lpm_trie_key` puts the prefix length in
/// bits before it). Named apart from `std::net::Ipv6Addr` on purpose.
pub type Ipv6Bytes = [u8; 16];

/// Verdict of a trusted-set entry.
pub const VERDICT_ALLOW: u32 = 1;
pub const VERDICT_DENY: u32 = 2;

/// Value of a trusted-set entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// `VERDICT_ALLOW` or `VERDICT_DENY`.
    pub verdict: u32,
    /// Index into this generation's label table: where the entry came from.
    pub source: u32,
}

/// A label: NUL-padded UTF-8 naming where an entry came from.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label {
    pub bytes: [u8; LABEL_LEN],
}

impl Default for Label {
    fn default() -> Self {
        Label {
            bytes: [0; LABEL_LEN],
        }
    }
}

/// `Meta::layout` of this version: bumped with every change of `Meta`.
/// Pins made by an older wotgate have another value size and are refused
/// by size before this field is read (the first layout, 48 bytes, had no
/// such field).
pub const META_LAYOUT: u64 = 3;

/// `Journal::state`: no update under way; both tries hold the same set.
pub const JOURNAL_IDLE: u32 = 0;
/// `Journal::state`: trie `target` (inactive) is being written with the
/// new set; the selector still points to the other, which holds the old set.
pub const JOURNAL_FILL: u32 = 1;
/// `Journal::state`: the selector points to the new set (or is about to);
/// trie `target`, inactive, is being brought to the same set.
pub const JOURNAL_SYNC: u32 = 2;
/// `Journal::state`: a rewrite enforced ahead of its trie. Compiled copy
/// `target` holds the new set (valid, no prefix shorter than /32, so the
/// program never reads trie `target` through it) and the selector points
/// or is about to point to it; trie `target` and its labels are being
/// emptied and filled. The other half still holds the previous set intact
/// (trie, labels and copy): a repair flips back to it.
pub const JOURNAL_AHEAD: u32 = 3;

/// `Journal::kind`: the change is applied entry by entry (a diff).
pub const JOURNAL_DIFF: u32 = 1;
/// `Journal::kind`: the trie is emptied and filled again (a full rewrite).
pub const JOURNAL_FULL: u32 = 2;

/// What update is under way, written before a trie is touched and set back
/// to idle after both tries hold the new set. A process killed in between
/// leaves it non-idle; the next writer repairs the pair from the active
/// trie (always a complete set: a trie is written only while inactive), or
/// in state `JOURNAL_AHEAD` flips back to the other one, which is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// `JOURNAL_IDLE`, `JOURNAL_FILL`, `JOURNAL_AHEAD` or `JOURNAL_SYNC`.
    pub state: u32,
    /// The trie being written (0 or 1).
    pub target: u32,
    /// `JOURNAL_DIFF` or `JOURNAL_FULL`.
    pub kind: u32,
    /// Process id of the writer (for `inspect`).
    pub pid: u32,
    /// Generation of the set the update started from, and of the new one.
    pub from_generation: u64,
    pub to_generation: u64,
    /// Entries removed and written (added or changed) by the update.
    pub removed: u64,
    pub written: u64,
    /// Digest of the new set (see `Meta::digest`).
    pub digest: [u64; 4],
}

/// Bookkeeping for the two tries, element 0 of `WG_META`. Written only by
/// user space, read by `inspect`; the program never reads it.
///
/// Between updates both tries hold the same set ("in sync"): the same
/// generation, entries and digest in both slots, and the same label ids.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Generation number held by each trie (0 = never filled).
    pub generation: [u64; 2],
    /// Entries in each trie.
    pub entries: [u64; 2],
    /// Unix time (seconds) each trie was filled.
    pub loaded_at: [u64; 2],
    /// `META_LAYOUT` once written by this version (0 in a gate never loaded).
    pub layout: u64,
    /// Digest of the set each trie holds: the lane-wise wrapping sum of the
    /// SHA-256 of every entry (order independent, so an update changes it in
    /// proportion to the change). All zero for the empty set.
    pub digest: [[u64; 4]; 2],
    /// The update under way, if any.
    pub journal: Journal,
    /// The size of a record slot (`record::RecordSlot`, 24) once this
    /// version wrote the metadata: the halves may keep their set in the
    /// records. The field grew `Meta`, so a wotgate from before the records
    /// (which would take the tries for the whole set) refuses these pins by
    /// size instead of misreading them.
    pub record_slot: u64,
}

/// Why a packet got its verdict; index into the per-CPU `WG_COUNTERS` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// IPv6 SYN to a protected port from a source in an allow entry.
    TrustedPass = 0,
    /// IPv6 SYN to a protected port from a source with no entry.
    UntrustedDrop = 1,
    /// IPv6 SYN to a protected port from a source in a deny entry.
    DeniedDrop = 2,
    /// IPv4 SYN to a protected port (IPv4 is never trusted).
    NonIpv6Drop = 3,
    /// IPv6 packet to a protected destination whose extension-header chain
    /// is longer than `MAX_EXT_HEADERS`.
    MalformedDrop = 4,
    /// Observe mode: a packet one of the drop reasons would have dropped.
    ObserveWouldDrop = 5,
    /// Everything that is not a SYN to a protected port.
    OtherPass = 6,
    /// Observe mode breakdown of `ObserveWouldDrop`, per drop reason.
    ObserveUntrusted = 7,
    ObserveDenied = 8,
    ObserveNonIpv6 = 9,
    ObserveMalformed = 10,
}

pub const REASON_COUNT: u32 = 11;

/// `BPF_PROG_TEST_RUN` without a context runs the program as if the packet
/// arrived on the loopback device, whose index is 1 in every namespace. The
/// gate never attaches to loopback, so such packets are test runs (`check`,
/// `replay`, the tests): they are counted in a second bank of counters and
/// never disturb what the gate reports about real traffic.
pub const TEST_RUN_IFINDEX: u32 = 1;
/// Slots of `WG_COUNTERS`: `REASON_COUNT` for real traffic, then the same
/// again for test runs.
pub const COUNTER_SLOTS: u32 = 2 * REASON_COUNT;

impl Reason {
    pub const ALL: [Reason; REASON_COUNT as usize] = [
        Reason::TrustedPass,
        Reason::UntrustedDrop,
        Reason::DeniedDrop,
        Reason::NonIpv6Drop,
        Reason::MalformedDrop,
        Reason::ObserveWouldDrop,
        Reason::OtherPass,
        Reason::ObserveUntrusted,
        Reason::ObserveDenied,
        Reason::ObserveNonIpv6,
        Reason::ObserveMalformed,
    ];

    /// Stable snake_case name used in `inspect` and `replay` output.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::TrustedPass => "trusted_pass",
            Reason::UntrustedDrop => "untrusted_drop",
            Reason::DeniedDrop => "denied_drop",
            Reason::NonIpv6Drop => "non_ipv6_drop",
            Reason::MalformedDrop => "malformed_drop",
            Reason::ObserveWouldDrop => "observe_would_drop",
            Reason::OtherPass => "other_pass",
            Reason::ObserveUntrusted => "observe_untrusted",
            Reason::ObserveDenied => "observe_denied",
            Reason::ObserveNonIpv6 => "observe_non_ipv6",
            Reason::ObserveMalformed => "observe_malformed",
        }
    }

    /// Whether this reason drops the packet (in enforce mode).
    pub const fn drops(self) -> bool {
        matches!(
            self,
            Reason::UntrustedDrop
                | Reason::DeniedDrop
                | Reason::NonIpv6Drop
                | Reason::MalformedDrop
        )
    }

    /// The observe-mode breakdown counter for a drop reason.
    pub const fn observed(self) -> Reason {
        match self {
            Reason::UntrustedDrop => Reason::ObserveUntrusted,
            Reason::DeniedDrop => Reason::ObserveDenied,
            Reason::NonIpv6Drop => Reason::ObserveNonIpv6,
            Reason::MalformedDrop => Reason::ObserveMalformed,
            other => other,
        }
    }

    pub fn from_u32(v: u32) -> Option<Reason> {
        Reason::ALL.get(v as usize).copied()
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), Copy, and have no padding holes that
    // could leak uninitialised bytes (every field is a fixed-size integer).
    unsafe impl aya::Pod for super::GateConfig {}
    unsafe impl aya::Pod for super::Entry {}
    unsafe impl aya::Pod for super::Label {}
    unsafe impl aya::Pod for super::Meta {}
    unsafe impl aya::Pod for super::Journal {}
    unsafe impl aya::Pod for super::lookup::LookupHeader {}
    unsafe impl aya::Pod for super::lookup::Bucket {}
    unsafe impl aya::Pod for super::lookup::ListEntry {}
    unsafe impl aya::Pod for super::lookup::Node {}
    unsafe impl aya::Pod for super::record::RecordSlot {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_are_stable() {
        // These sizes are part of the pinned-map ABI: a new loader must be
        // able to read maps pinned by an older one.
        assert_eq!(size_of::<GateConfig>(), 4 + 4 + 2 * MAX_PORTS);
        assert_eq!(size_of::<Entry>(), 8);
        assert_eq!(size_of::<Label>(), LABEL_LEN);
        assert_eq!(size_of::<Journal>(), 4 * 4 + 4 * 8 + 32);
        assert_eq!(size_of::<Meta>(), 48 + 8 + 64 + size_of::<Journal>() + 8);
    }

    #[test]
    fn ports_match_only_within_nports() {
        let mut c = GateConfig {
            nports: 2,
            ..Default::default()
        };
        c.ports[0] = 25;
        c.ports[1] = 2525;
        c.ports[2] = 587; // beyond nports: must not count
        assert!(c.is_protected_port(25));
        assert!(c.is_protected_port(2525));
        assert!(!c.is_protected_port(587));
        assert!(!c.is_protected_port(0));
        c.nports = 100; // corrupt count is clamped, not trusted
        assert!(c.is_protected_port(587));
        assert!(!c.is_protected_port(1));
    }

    #[test]
    fn reasons_roundtrip_and_classify() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert_eq!(Reason::from_u32(i as u32), Some(*r));
        }
        assert_eq!(Reason::from_u32(REASON_COUNT), None);
        let drops: u32 = Reason::ALL.iter().filter(|r| r.drops()).count() as u32;
        assert_eq!(drops, 4);
        assert_eq!(Reason::DeniedDrop.observed(), Reason::ObserveDenied);
        assert_eq!(Reason::TrustedPass.observed(), Reason::TrustedPass);
    }
}
