//! Attaching the pinned program to interfaces through pinned XDP links, so
//! the gate outlives the loader; detaching; listing what is attached.

use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;

use super::{sys, Gate, GateError, Result};

pub use crate::model::settings::XdpMode;

/// The aya attach flag for a mode.
fn aya_mode(mode: XdpMode) -> aya::programs::XdpMode {
    match mode {
        XdpMode::Native => aya::programs::XdpMode::Driver,
        XdpMode::Skb => aya::programs::XdpMode::Skb,
    }
}

/// The warning printed whenever skb mode is chosen.
pub const SKB_WARNING: &str = "generic (skb) mode: the program runs after the kernel has allocated an skb for every packet, so drops cost several times more than in native mode and all traffic on the interface pays for it; use it only where the driver has no native XDP";

const LINK_PREFIX: &str = "link_";

/// Pin name of an interface's link: `link_<mode>_<ifname>`. bpffs refuses
/// dots in names, which interface names may have (`eth0.100`): escaped.
fn link_pin(pin_dir: &Path, mode: XdpMode, iface: &str) -> PathBuf {
    let escaped = iface.replace('%', "%25").replace('.', "%2e");
    pin_dir.join(format!("{LINK_PREFIX}{}_{escaped}", mode.as_str()))
}

fn unescape(name: &str) -> String {
    name.replace("%2e", ".").replace("%25", "%")
}

pub(super) fn is_link_pin(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(LINK_PREFIX))
}

/// Whether the gate can attach to `iface` here: it exists in this network
/// namespace and is not loopback (test runs are recognised by loopback's index).
pub fn check_iface(iface: &str) -> Result<()> {
    match sys::ifindex(iface) {
        None => Err(GateError::NoSuchInterface(iface.to_string())),
        Some(gate_common::TEST_RUN_IFINDEX) => Err(GateError::Loopback(iface.to_string())),
        Some(_) => Ok(()),
    }
}

/// One pinned attachment as the kernel reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Attachment {
    /// Interface name recorded at attach time.
    pub iface: String,
    pub mode: XdpMode,
    pub link_id: Option<u64>,
    pub program_id: Option<u64>,
    /// Interface index the link is on (0 when the interface is gone and the
    /// link is defunct).
    pub ifindex: Option<u64>,
    /// Whether the interface the link is on still exists under that name.
    pub live: bool,
}

impl Gate {
    /// Attaches the gate's program to `iface`. Attaching again in the same
    /// mode is a no-op; the interface must not carry another XDP program.
    pub fn attach(&self, iface: &str, mode: XdpMode) -> Result<Attachment> {
        check_iface(iface)?;
        for a in self.attachments()? {
            if a.iface == iface && a.live {
                if a.mode == mode {
                    return Ok(a);
                }
                return Err(GateError::AlreadyAttached {
                    iface: iface.to_string(),
                    mode: a.mode,
                });
            }
        }
        let mut prog = self.program()?;
        let id = prog
            .attach(iface, aya_mode(mode))
            .map_err(|source| GateError::AttachFailed {
                iface: iface.to_string(),
                mode,
                source,
            })?;
        let link: FdLink = prog
            .take_link(id)?
            .try_into()
            .map_err(|source| GateError::XdpLink {
                iface: iface.to_string(),
                source,
            })?;
        let path = link_pin(&self.pin_dir, mode, iface);
        link.pin(&path).map_err(|source| GateError::Pin {
            path: path.clone(),
            source,
        })?;
        self.attachments()?
            .into_iter()
            .find(|a| a.iface == iface)
            .ok_or_else(|| GateError::LinkVanished(iface.to_string()))
    }

    /// Detaches from `iface` by removing its link pin. Returns false when
    /// the gate was not attached there.
    pub fn detach(&self, iface: &str) -> Result<bool> {
        let mut found = false;
        for mode in XdpMode::ALL {
            let p = link_pin(&self.pin_dir, mode, iface);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|source| GateError::Io { path: p, source })?;
                found = true;
            }
        }
        Ok(found)
    }

    /// Every pinned link, with what the kernel says about it.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        let dir = &self.pin_dir;
        let mut out = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|source| GateError::Io {
            path: dir.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(LINK_PREFIX) else {
                continue;
            };
            let Some((mode, iface)) = rest.split_once('_') else {
                continue;
            };
            let iface = unescape(iface);
            let Ok(mode) = mode.parse::<XdpMode>() else {
                continue;
            };
            let info = sys::obj_get(&e.path())
                .and_then(|fd| sys::fdinfo(&fd))
                .unwrap_or_default();
            let ifindex = sys::fdinfo_u64(&info, "ifindex");
            let live = matches!(ifindex, Some(i) if i != 0 && sys::ifname(i as u32).as_deref() == Some(iface.as_str()));
            out.push(Attachment {
                iface,
                mode,
                link_id: sys::fdinfo_u64(&info, "link_id"),
                program_id: sys::fdinfo_u64(&info, "prog_id"),
                ifindex,
                live,
            });
        }
        out.sort_by(|a, b| a.iface.cmp(&b.iface));
        Ok(out)
    }

    /// Program id and whether the kernel JIT-compiled it.
    pub fn program_info(&self) -> Result<(Option<u64>, Option<bool>)> {
        let p = self.pin_dir.join(super::PROG_PIN);
        let info = sys::obj_get(&p)
            .and_then(|fd| sys::fdinfo(&fd))
            .map_err(|source| GateError::Io { path: p, source })?;
        Ok((
            sys::fdinfo_u64(&info, "prog_id"),
            sys::fdinfo_u64(&info, "prog_jited").map(|j| j != 0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_pins_escape_dots_and_roundtrip() {
        let p = link_pin(Path::new("/x"), XdpMode::Skb, "eth0.100%");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(!name.contains('.'), "{name}");
        assert!(is_link_pin(&p));
        let rest = name.strip_prefix(LINK_PREFIX).unwrap();
        let (mode, iface) = rest.split_once('_').unwrap();
        assert_eq!(
            (mode.parse::<XdpMode>(), unescape(iface).as_str()),
            (Ok(XdpMode::Skb), "eth0.100%")
        );
    }
}
