//! What can go wrong talking to the gate, one variant per problem; each
//! message says its cause once (causes are part of the text, not a chain).

use std::{path::PathBuf, time::Duration};

use gate_common::MAX_PORTS;

use super::{
    attach::{OtherXdp, XdpMode},
    lock::LockHolder,
};

/// An error followed by its chain of causes, `a: b: c`, each said once (a
/// cause whose text is already there is left out).
pub struct Causes<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let t = cause.to_string();
            if !t.is_empty() && !text.contains(&t) {
                text.push_str(": ");
                text.push_str(&t);
            }
            next = cause.source();
        }
        f.write_str(&text)
    }
}

/// Everything that can go wrong talking to the gate in the kernel. One
/// variant per problem, so a daemon can count them and act on each. Causes
/// are written into the message and not chained (`{:#}` says them once).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("this wotgate was built without the XDP program; build with `cargo xtask build` (WOTGATE_BUILD_EBPF=1)")]
    NoObject,
    #[error("the XDP object has no program {0:?}; it does not match this wotgate (rebuild both with `cargo xtask build`)")]
    MissingProgram(&'static str),
    #[error("no gate pinned at {}: attach one first (wotgate attach --iface IF)", .0.display())]
    NotPinned(PathBuf),
    #[error("{}: {}", path.display(), Causes(cause))]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("loading the XDP object: {}", Causes(.0))]
    Load(aya::EbpfError),
    #[error("XDP program: {}", Causes(.0))]
    Program(aya::programs::ProgramError),
    #[error("map {name} pinned at {}: {}", path.display(), Causes(cause))]
    Map {
        name: &'static str,
        path: PathBuf,
        cause: aya::maps::MapError,
    },
    #[error("pinning {}: {}", path.display(), Causes(cause))]
    Pin {
        path: PathBuf,
        cause: aya::pin::PinError,
    },
    #[error("map read on {name}: {}", Causes(cause))]
    Read {
        name: &'static str,
        cause: aya::maps::MapError,
    },
    #[error("map update on {name}: {}", Causes(cause))]
    Update {
        name: &'static str,
        cause: aya::maps::MapError,
    },

    // The pin directory and its lock.
    #[error("{} is not on a bpf filesystem{}: use a directory inside one, e.g. /sys/fs/bpf/wotgate (wotgate mounts bpffs at /sys/fs/bpf itself when nothing is mounted there)", given.display(), resolved_note(given, resolved))]
    NotOnBpffs { given: PathBuf, resolved: PathBuf },
    #[error("{} is the root of a bpf filesystem: the gate needs a directory of its own in it, e.g. {}", .0.display(), .0.join("wotgate").display())]
    BpffsRoot(PathBuf),
    #[error("{} does not look like a gate's pin directory (it holds {}): wotgate leaves it alone", dir.display(), list(foreign))]
    NotAGate { dir: PathBuf, foreign: Vec<String> },
    #[error("mounting bpffs at /sys/fs/bpf: {} (are you root?)", Causes(.0))]
    Mount(std::io::Error),
    #[error("the lock on {} is still held{} after waiting {} s: another wotgate is changing the gate; try again when it is done", dir.display(), holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default(), waited.as_secs())]
    LockBusy {
        dir: PathBuf,
        holder: Option<LockHolder>,
        waited: Duration,
    },
    #[error("the gate pinned at {} was removed (or replaced) while this command waited for its lock; nothing was changed", .0.display())]
    Removed(PathBuf),
    #[error("the gate pinned at {} is still attached to {}: detach those first (wotgate detach --iface IF), or purge with --detach-all", dir.display(), ifaces.join(", "))]
    StillAttached { dir: PathBuf, ifaces: Vec<String> },

    // Settings.
    #[error("between 1 and {max} protected ports, got {got}", max = MAX_PORTS)]
    PortCount { got: usize },
    #[error("port 0 cannot be protected")]
    PortZero,
    #[error("at most {max} protected destinations, got {got}")]
    TooManyProtected { got: usize, max: usize },

    // Interfaces and links.
    #[error("no interface {0:?} in this network namespace")]
    NoSuchInterface(String),
    #[error("the gate does not attach to loopback ({0}): test runs are recognised by its index")]
    Loopback(String),
    #[error("{iface} is already gated in {mode} mode; detach it first")]
    AlreadyAttached { iface: String, mode: XdpMode },
    #[error("{iface} already has another XDP program attached ({other}); an interface runs one XDP program, and the gate does not replace it. Remove it first if it should go (ip link set dev {iface} xdp off, or the tool that attached it), or gate another interface")]
    OtherXdpProgram { iface: String, other: OtherXdp },
    #[error("attaching to {iface} in {mode} mode failed: {}{}", Causes(cause), attach_hint(*mode, cause))]
    AttachFailed {
        iface: String,
        mode: XdpMode,
        cause: aya::programs::ProgramError,
    },
    #[error("XDP link on {iface}: {}", Causes(cause))]
    XdpLink {
        iface: String,
        cause: aya::programs::links::LinkError,
    },
    #[error("link on {0} vanished after pinning")]
    LinkVanished(String),

    // The trusted set.
    #[error(
        "the set has {got} entries, more than the gate's trie holds ({max}); nothing was changed"
    )]
    TooManyEntries { got: usize, max: u32 },
    #[error("the set has {got} distinct labels, more than the gate's label table holds ({max}); nothing was changed")]
    LabelsFull { got: usize, max: u32 },
    #[error("the label of {prefix} is {len} bytes, more than the {max} a kernel label holds; nothing was changed")]
    LabelTooLong {
        prefix: ipnet::Ipv6Net,
        len: usize,
        max: usize,
    },
    #[error("the label of {prefix} contains a NUL byte; nothing was changed")]
    LabelNul { prefix: ipnet::Ipv6Net },
    #[error("the new set did not verify after filling trie {trie}: {problem}; the active set is unchanged")]
    Verify { trie: usize, problem: String },
    #[error("trie {trie} holds entries that do not form a set: {problem}")]
    Inconsistent { trie: usize, problem: String },
    #[error("the gate pinned at {} was made by another wotgate version: its {map} holds {found}, this version needs {wanted}; nothing was read or changed. Remove it and attach again (wotgate detach --purge, then wotgate attach; the daemon reloads its last good plan at once)", dir.display())]
    PinLayout {
        dir: PathBuf,
        map: &'static str,
        found: String,
        wanted: String,
    },
    #[error("an update of the trusted set was interrupted (journal: {journal}) and the pair could not be repaired: {problem}; the active set is unchanged")]
    Repair { journal: String, problem: String },

    // Test runs and captures.
    #[error("the program counted no reason for a test packet")]
    NoReason,
    #[error("{}: {}", path.display(), Causes(cause))]
    Pcap {
        path: PathBuf,
        cause: pcap_file::PcapError,
    },
    #[error("{}: cut short inside the pcap file header (24 bytes)", .0.display())]
    CaptureHeaderCut(PathBuf),
    #[error("{}: not a capture wotgate reads (it starts with {magic:02x?}): pcap (tcpdump -w) or pcapng", path.display())]
    NotACapture { path: PathBuf, magic: Vec<u8> },
    #[error("{}: link type {link} is not supported (Ethernet, Linux cooked or raw IP)", path.display())]
    PcapLinkType { path: PathBuf, link: String },
}

impl From<aya::EbpfError> for GateError {
    fn from(e: aya::EbpfError) -> Self {
        GateError::Load(e)
    }
}

impl From<aya::programs::ProgramError> for GateError {
    fn from(e: aya::programs::ProgramError) -> Self {
        GateError::Program(e)
    }
}

fn resolved_note(given: &std::path::Path, resolved: &std::path::Path) -> String {
    if given == resolved {
        String::new()
    } else {
        format!(" (it resolves to {})", resolved.display())
    }
}

fn list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// What to try after a failed attach, when the error says something useful.
fn attach_hint(mode: XdpMode, cause: &aya::programs::ProgramError) -> &'static str {
    let errno = super::attach::os_error(cause);
    match (mode, errno) {
        (XdpMode::Native, Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
            " (the driver may have no native XDP: try --xdp-mode skb)"
        }
        (_, Some(libc::EBUSY | libc::EEXIST)) => {
            " (another XDP program is attached to it: see `ip link show`)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer says: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(libc::EISDIR);
        let e = GateError::Io {
            path: "/x".into(),
            cause: io,
        };
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(text.matches("Is a directory").count(), 1, "{text}");
        // A cause the outer text already holds is not repeated.
        let outer = Outer(std::io::Error::other("EOF"));
        assert_eq!(Causes(&outer).to_string(), "outer says: EOF");
        let e = GateError::Pcap {
            path: "/c.pcap".into(),
            cause: pcap_file::PcapError::IoError(std::io::ErrorKind::UnexpectedEof.into()),
        };
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(text.matches("unexpected end of file").count(), 1, "{text}");
    }

    #[test]
    fn gate_errors_chain_nothing() {
        use std::error::Error;
        let e = GateError::Io {
            path: "/x".into(),
            cause: std::io::Error::other("boom"),
        };
        assert!(e.source().is_none());
        assert_eq!(e.to_string(), "/x: boom");
    }
}
