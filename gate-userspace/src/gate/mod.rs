//! The gate in the kernel as user space sees it: pinned maps and links, the
//! trusted-set swap, inspection, address checks and pcap replay.

pub mod attach;
pub mod inspect;
pub mod replay;
mod settings;
pub mod swap;
pub mod sys;

pub use settings::{Settings, SettingsUpdate};

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use aya::{
    maps::{lpm_trie::LpmTrie, Array, HashMap, Map, MapData, PerCpuArray},
    programs::Xdp,
    EbpfLoader,
};
use aya_obj::programs::XdpAttachType;
use gate_common::{maps, Entry, GateConfig, Ipv6Bytes, Label, Meta, MAX_PORTS};
use ipnet::Ipv6Net;

/// Where the gate pins its state unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/wotgate";
/// Name of the program pin inside the pin directory.
const PROG_PIN: &str = "prog";

/// Everything that can go wrong talking to the gate in the kernel. One
/// variant per problem, so a daemon can count them and act on each.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("this wotgate was built without the XDP program; build with `cargo xtask build` (WOTGATE_BUILD_EBPF=1)")]
    NoObject,
    #[error("the XDP object has no program {0:?}; it does not match this wotgate (rebuild both with `cargo xtask build`)")]
    MissingProgram(&'static str),
    #[error("no gate pinned at {0}: attach one first (wotgate attach --iface IF)")]
    NotPinned(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("map {name} pinned at {path}: {source}")]
    Map {
        name: &'static str,
        path: PathBuf,
        source: aya::maps::MapError,
    },
    #[error("pinning {path}: {source}")]
    Pin {
        path: PathBuf,
        source: aya::pin::PinError,
    },
    #[error("map read on {name}: {source}")]
    Read {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("map update on {name}: {source}")]
    Update {
        name: &'static str,
        source: aya::maps::MapError,
    },

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
    AlreadyAttached {
        iface: String,
        mode: attach::XdpMode,
    },
    #[error("attaching to {iface} in {mode} mode failed: {source} (another XDP program on it? driver without native XDP? try --xdp-mode skb)")]
    AttachFailed {
        iface: String,
        mode: attach::XdpMode,
        source: aya::programs::ProgramError,
    },
    #[error("XDP link on {iface}: {source}")]
    XdpLink {
        iface: String,
        source: aya::programs::links::LinkError,
    },
    #[error("link on {0} vanished after pinning")]
    LinkVanished(String),

    // The trusted set.
    #[error("more than {max} distinct labels; the gate's label table is full")]
    LabelsFull { max: u32 },
    #[error("the new set did not verify after filling trie {trie}: {problem}; the active set is unchanged")]
    Verify { trie: usize, problem: String },
    #[error("trie {trie} holds entries that do not form a set: {problem}")]
    Inconsistent { trie: usize, problem: String },

    // Test runs and captures.
    #[error("the program counted no reason for a test packet")]
    NoReason,
    #[error("{path}: {source}")]
    Pcap {
        path: PathBuf,
        source: pcap_file::PcapError,
    },
    #[error("{path}: link type {link} is not supported (Ethernet, Linux cooked or raw IP)")]
    PcapLinkType { path: PathBuf, link: String },
}

pub type Result<T, E = GateError> = std::result::Result<T, E>;

/// Maps a failed map read to [`GateError::Read`].
pub(crate) fn read_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> GateError + Copy {
    move |source| GateError::Read { name, source }
}

/// Maps a failed map write or delete to [`GateError::Update`].
pub(crate) fn update_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> GateError + Copy {
    move |source| GateError::Update { name, source }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GateError + '_ {
    move |source| GateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Handles on the pinned maps of one gate (one program, any number of
/// interfaces, one shared trusted set).
pub struct Gate {
    pin_dir: PathBuf,
    config: Array<MapData, GateConfig>,
    active: Array<MapData, u32>,
    trust: [LpmTrie<MapData, Ipv6Bytes, Entry>; 2],
    labels: [HashMap<MapData, u32, Label>; 2],
    meta: Array<MapData, Meta>,
    protect: LpmTrie<MapData, Ipv6Bytes, u32>,
    counters: PerCpuArray<MapData, u64>,
}

impl Gate {
    /// Opens the gate pinned at `pin_dir`, creating maps and loading and
    /// pinning the program first when nothing is pinned there yet.
    pub fn create(pin_dir: &Path) -> Result<Gate> {
        sys::ensure_bpffs(pin_dir).map_err(io_err(pin_dir))?;
        std::fs::create_dir_all(pin_dir).map_err(io_err(pin_dir))?;
        let guard = lock(pin_dir)?;
        let prog_pin = pin_dir.join(PROG_PIN);
        if !prog_pin.exists() {
            if crate::EBPF_OBJECT.is_empty() {
                return Err(GateError::NoObject);
            }
            sys::raise_memlock();
            let mut ebpf = EbpfLoader::new()
                .default_map_pin_directory(pin_dir)
                .load(crate::EBPF_OBJECT)?;
            let prog: &mut Xdp = ebpf
                .program_mut(gate_common::PROGRAM_NAME)
                .ok_or(GateError::MissingProgram(gate_common::PROGRAM_NAME))?
                .try_into()?;
            prog.load()?;
            prog.pin(&prog_pin).map_err(|source| GateError::Pin {
                path: prog_pin.clone(),
                source,
            })?;
        }
        let mut gate = Self::open(pin_dir)?;
        let cfg = gate.raw_config()?;
        drop(guard);
        if cfg.nports == 0 {
            gate.set_settings(&Settings::default())?;
        }
        Ok(gate)
    }

    /// Opens an existing pinned gate; never loads anything. Readers take no
    /// lock; writers (`set_settings`, `load_set`, test runs) take the pin
    /// directory's lock for the duration of the change.
    pub fn open(pin_dir: &Path) -> Result<Gate> {
        if !pin_dir.join(maps::CONFIG).exists() {
            return Err(GateError::NotPinned(pin_dir.to_path_buf()));
        }
        let t0 = open_map(pin_dir, maps::TRUST[0])?;
        let t1 = open_map(pin_dir, maps::TRUST[1])?;
        let l0 = open_map(pin_dir, maps::LABELS[0])?;
        let l1 = open_map(pin_dir, maps::LABELS[1])?;
        Ok(Gate {
            pin_dir: pin_dir.to_path_buf(),
            config: open_map(pin_dir, maps::CONFIG)?,
            active: open_map(pin_dir, maps::ACTIVE)?,
            trust: [t0, t1],
            labels: [l0, l1],
            meta: open_map(pin_dir, maps::META)?,
            protect: open_map(pin_dir, maps::PROTECT)?,
            counters: open_map(pin_dir, maps::COUNTERS)?,
        })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The pinned program, for attaching and `BPF_PROG_TEST_RUN`.
    pub fn program(&self) -> Result<Xdp> {
        let path = self.pin_dir.join(PROG_PIN);
        if !path.exists() {
            return Err(GateError::NotPinned(self.pin_dir.clone()));
        }
        Ok(Xdp::from_pin(&path, XdpAttachType::Interface)?)
    }

    fn raw_config(&self) -> Result<GateConfig> {
        self.config.get(&0, 0).map_err(read_err(maps::CONFIG))
    }

    /// The gate-wide settings currently in force.
    pub fn settings(&self) -> Result<Settings> {
        let c = self.raw_config()?;
        let n = (c.nports as usize).min(MAX_PORTS);
        let mut protect: Vec<Ipv6Net> = self
            .protect
            .keys()
            .filter_map(|k| k.ok())
            .filter_map(|k| Ipv6Net::new(k.data().into(), k.prefix_len() as u8).ok())
            .collect();
        protect.sort();
        Ok(Settings {
            ports: c.ports[..n].to_vec(),
            observe: c.flags & gate_common::FLAG_OBSERVE != 0,
            protect,
        })
    }

    /// Replaces the gate-wide settings. The protected-destination list is
    /// written before the flag that enables it, and cleared after it is off.
    pub fn set_settings(&mut self, s: &Settings) -> Result<()> {
        s.validate()?;
        let _guard = self.lock()?;
        let upd = update_err(maps::PROTECT);
        let old: Vec<_> = self.protect.keys().filter_map(|k| k.ok()).collect();
        let wanted: Vec<_> = s
            .protect
            .iter()
            .map(|n| aya::maps::lpm_trie::Key::new(n.prefix_len() as u32, n.network().octets()))
            .collect();
        for k in &wanted {
            self.protect.insert(k, 1, 0).map_err(upd)?;
        }
        let mut cfg = GateConfig {
            nports: s.ports.len() as u32,
            ..Default::default()
        };
        cfg.ports[..s.ports.len()].copy_from_slice(&s.ports);
        if s.observe {
            cfg.flags |= gate_common::FLAG_OBSERVE;
        }
        if !s.protect.is_empty() {
            cfg.flags |= gate_common::FLAG_PROTECT_DST;
        }
        self.config
            .set(0, cfg, 0)
            .map_err(update_err(maps::CONFIG))?;
        for k in old {
            let keep = wanted
                .iter()
                .any(|w| w.prefix_len() == k.prefix_len() && w.data() == k.data());
            if !keep {
                self.protect.remove(&k).map_err(upd)?;
            }
        }
        Ok(())
    }

    /// Per-reason totals summed over CPUs.
    pub fn counters(&self) -> Result<Vec<(gate_common::Reason, u64)>> {
        gate_common::Reason::ALL
            .iter()
            .map(|r| {
                let v = self
                    .counters
                    .get(&(*r as u32), 0)
                    .map_err(read_err(maps::COUNTERS))?;
                Ok((*r, v.iter().sum()))
            })
            .collect()
    }
}

impl Gate {
    /// Serialises writers across processes (flock on the pin directory).
    pub fn lock(&self) -> Result<File> {
        lock(&self.pin_dir)
    }
}

fn lock(pin_dir: &Path) -> Result<File> {
    let f = File::open(pin_dir).map_err(io_err(pin_dir))?;
    // SAFETY: valid fd; blocks until other wotgate processes are done.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err(pin_dir)(std::io::Error::last_os_error()));
    }
    Ok(f)
}

fn open_map<T>(pin_dir: &Path, name: &'static str) -> Result<T>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let path = pin_dir.join(name);
    let err = |source| GateError::Map {
        name,
        path: path.clone(),
        source,
    };
    if !path.exists() {
        return Err(GateError::NotPinned(pin_dir.to_path_buf()));
    }
    let data = MapData::from_pin(&path).map_err(err)?;
    let map = Map::from_map_data(data).map_err(err)?;
    T::try_from(map).map_err(err)
}

/// Removes everything pinned under `pin_dir` (links first, which detaches
/// the program from every interface), then the directory.
pub fn purge(pin_dir: &Path) -> Result<()> {
    if !pin_dir.exists() {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(pin_dir)
        .map_err(io_err(pin_dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // Links before the program and maps.
    entries.sort_by_key(|p| !attach::is_link_pin(p));
    for p in entries {
        std::fs::remove_file(&p).map_err(io_err(&p))?;
    }
    std::fs::remove_dir(pin_dir).map_err(io_err(pin_dir))
}
