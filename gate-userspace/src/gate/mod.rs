//! The gate in the kernel as user space sees it: pinned maps and links, the
//! trusted-set swap, inspection, address checks and pcap replay.

pub mod prefixes;

/// Where the gate pins its state unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/wotgate";
