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
pub(super) fn link_pin(pin_dir: &Path, mode: XdpMode, iface: &str) -> PathBuf {
    let escaped = iface.replace('%', "%25").replace('.', "%2e");
    pin_dir.join(format!("{LINK_PREFIX}{}_{escaped}", mode.as_str()))
}

fn unescape(name: &str) -> String {
    name.replace("%2e", ".").replace("%25", "%")
}

/// The mode and interface a link pin's name stands for; `None` for any
/// other name.
pub(super) fn parse_link_pin(name: &str) -> Option<(XdpMode, String)> {
    let rest = name.strip_prefix(LINK_PREFIX)?;
    let (mode, iface) = rest.split_once('_')?;
    let mode = mode.parse::<XdpMode>().ok()?;
    (!iface.is_empty()).then(|| (mode, unescape(iface)))
}

/// The errno behind a failed attach, when there is one.
pub(super) fn os_error(e: &aya::programs::ProgramError) -> Option<i32> {
    use std::error::Error;
    let mut next: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        next = err.source();
    }
    None
}

/// Another XDP program found on an interface the gate could not attach to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherXdp {
    /// Program id (0 when several programs are attached).
    pub id: u32,
    /// The program's name, when the kernel says.
    pub name: Option<String>,
    /// `native`, `skb`, `offloaded` or `several modes`.
    pub mode: &'static str,
}

impl std::fmt::Display for OtherXdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "program {n:?}")?,
            None => f.write_str("a program")?,
        }
        if self.id != 0 {
            write!(f, " id {}", self.id)?;
        }
        write!(f, ", {} mode", self.mode)
    }
}

/// What runs on `iface` now, if anything (netlink, then the program's name).
fn other_xdp(iface: &str) -> Option<OtherXdp> {
    let found = sys::xdp_on_link(sys::ifindex(iface)?).ok()??;
    let name = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == found.prog_id)
        .and_then(|p| p.name_as_str().map(str::to_string))
        .filter(|n| !n.is_empty());
    Some(OtherXdp {
        id: found.prog_id,
        name,
        mode: found.mode,
    })
}

/// Every link pinned in `dir`, with what the kernel says about it.
pub(super) fn attachments_in(dir: &Path) -> Result<Vec<Attachment>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(super::io_err(dir))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((mode, iface)) = parse_link_pin(&name) else {
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
    /// Whether the interface the link is on still exists under that name
    /// (in this network namespace).
    pub live: bool,
}

impl Attachment {
    /// Whether the kernel says the link is on an interface, in this network
    /// namespace or another (a link whose interface went away has index 0).
    pub fn attached(&self) -> bool {
        self.ifindex.is_some_and(|i| i != 0)
    }
}

impl Gate {
    /// Attaches the gate's program to `iface`. Attaching again in the same
    /// mode is a no-op; the interface must not carry another XDP program.
    pub fn attach(&self, iface: &str, mode: XdpMode) -> Result<Attachment> {
        check_iface(iface)?;
        let _guard = self.hold()?;
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
            .map_err(|cause| match other_xdp(iface) {
                Some(other) => GateError::OtherXdpProgram {
                    iface: iface.to_string(),
                    other,
                },
                None => GateError::AttachFailed {
                    iface: iface.to_string(),
                    mode,
                    cause,
                },
            })?;
        let link: FdLink = prog
            .take_link(id)?
            .try_into()
            .map_err(|cause| GateError::XdpLink {
                iface: iface.to_string(),
                cause,
            })?;
        let path = link_pin(&self.pin_dir, mode, iface);
        link.pin(&path).map_err(|cause| GateError::Pin {
            path: path.clone(),
            cause,
        })?;
        self.attachments()?
            .into_iter()
            .find(|a| a.iface == iface)
            .ok_or_else(|| GateError::LinkVanished(iface.to_string()))
    }

    /// Detaches from `iface` by removing its link pin. Returns false when
    /// the gate was not attached there.
    pub fn detach(&self, iface: &str) -> Result<bool> {
        let _guard = self.hold()?;
        let mut found = false;
        for mode in XdpMode::ALL {
            let p = link_pin(&self.pin_dir, mode, iface);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|cause| GateError::Io { path: p, cause })?;
                found = true;
            }
        }
        Ok(found)
    }

    /// Every pinned link, with what the kernel says about it.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        attachments_in(&self.pin_dir)
    }

    /// Program id and whether the kernel JIT-compiled it.
    pub fn program_info(&self) -> Result<(Option<u64>, Option<bool>)> {
        let p = self.pin_dir.join(super::PROG_PIN);
        let info = sys::obj_get(&p)
            .and_then(|fd| sys::fdinfo(&fd))
            .map_err(|cause| GateError::Io { path: p, cause })?;
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
        assert_eq!(
            parse_link_pin(name),
            Some((XdpMode::Skb, "eth0.100%".to_string()))
        );
        assert_eq!(parse_link_pin("link_"), None);
        assert_eq!(parse_link_pin("link_skb_"), None);
        assert_eq!(parse_link_pin("WG_CONFIG"), None);
    }
}
