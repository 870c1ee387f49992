//! The gate in the kernel as user space sees it: pinned maps and links, the
//! trusted-set swap, inspection, address checks, pcap replay and program
//! upgrades in place.

pub mod attach;
pub mod capture;
pub mod compile;
pub mod compiled;
mod error;
pub mod inspect;
mod layout;
pub mod lock;
mod lookup;
pub mod pins;
mod record;
pub mod replay;
mod settings;
pub mod swap;
pub mod sys;
pub mod upgrade;

pub use error::{Causes, GateError};
pub use lock::{set_lock_wait, LockHolder, LockWait, Locked, Waiting};
pub use pins::{purge, purge_if_unattached, PurgeReport};
pub use settings::{Settings, SettingsUpdate};
pub use upgrade::{UpgradeError, Upgraded};

use layout::check_layout;

use std::path::{Path, PathBuf};

use aya::{
    maps::{lpm_trie::LpmTrie, Array, HashMap, Map, MapData, PerCpuArray},
    programs::Xdp,
    EbpfLoader,
};
use aya_obj::programs::XdpAttachType;
use gate_common::{lookup::LookupHeader, maps, Entry, GateConfig, Ipv6Bytes, Label, Meta};

/// Where the gate pins its state unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/wotgate";
/// Name of the program pin inside the pin directory.
const PROG_PIN: &str = "prog";

pub type Result<T, E = GateError> = std::result::Result<T, E>;

/// Maps a failed map read to [`GateError::Read`].
pub(crate) fn read_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> GateError + Copy {
    move |cause| GateError::Read { name, cause }
}

/// Maps a failed map write or delete to [`GateError::Update`].
pub(crate) fn update_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> GateError + Copy {
    move |cause| GateError::Update { name, cause }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GateError + '_ {
    move |cause| GateError::Io {
        path: path.to_path_buf(),
        cause,
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
    /// Protected destinations, one trie per settings slot.
    protect: [LpmTrie<MapData, Ipv6Bytes, u32>; 2],
    counters: PerCpuArray<MapData, u64>,
    /// Headers of the compiled copies; their arrays, mapped when first
    /// written; the grace-period waiter, made when first needed.
    lookup: Array<MapData, LookupHeader>,
    copies: Option<lookup::Copies>,
    grace: Option<lookup::Grace>,
    /// Each half's record of its set while its copy is valid, mapped.
    records: [record::Record; 2],
    /// Whether this handle holds the pin directory's lock now (a
    /// [`Locked`] is alive): its writers then do not take it again.
    locked: bool,
    /// What this handle knows both tries hold (see `swap`): trusted only
    /// while the pinned metadata still names its generation and digest.
    mirror: Option<swap::Mirror>,
}

impl Gate {
    /// Opens the gate pinned at `pin_dir`, creating maps and loading and
    /// pinning the program first when nothing is pinned there yet. The
    /// directory must be inside a bpf filesystem (bpffs is mounted at
    /// /sys/fs/bpf when nothing is mounted there and the directory is below it).
    pub fn create(pin_dir: &Path) -> Result<Gate> {
        Self::create_with(pin_dir, &compile::Capacity::default())
    }

    /// As [`Gate::create`], with the compiled lookup's arrays sized to
    /// `capacity` (only when the gate's maps are created here; a set that
    /// does not fit is answered by the LPM trie instead).
    pub fn create_with(pin_dir: &Path, capacity: &compile::Capacity) -> Result<Gate> {
        let dir = pins::prepare(pin_dir)?;
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let file = lock::lock_dir(&dir)?;
        let prog_pin = dir.join(PROG_PIN);
        if dir.join(maps::META).exists() {
            // Old pins are refused before anything is loaded over them.
            check_layout(&dir)?;
        }
        if !prog_pin.exists() {
            pins::check_gate_dir(&dir)?;
            if crate::EBPF_OBJECT.is_empty() {
                return Err(GateError::NoObject);
            }
            sys::raise_memlock();
            let mut loader = EbpfLoader::new();
            loader.default_map_pin_directory(&dir);
            for c in 0..2 {
                loader.map_max_entries(maps::BUCKETS[c], capacity.buckets);
                loader.map_max_entries(maps::LISTS[c], capacity.lists);
                loader.map_max_entries(maps::NODES[c], capacity.nodes);
                loader.map_max_entries(maps::LEAVES[c], capacity.leaf_words);
                loader.map_max_entries(maps::RECORD[c], capacity.record);
            }
            let mut ebpf = loader.load(crate::EBPF_OBJECT)?;
            let prog: &mut Xdp = ebpf
                .program_mut(gate_common::PROGRAM_NAME)
                .ok_or(GateError::MissingProgram(gate_common::PROGRAM_NAME))?
                .try_into()?;
            prog.load()?;
            prog.pin(&prog_pin).map_err(|cause| GateError::Pin {
                path: prog_pin.clone(),
                cause,
            })?;
        }
        let mut gate = Self::open_resolved(dir)?;
        let mut locked = Locked::adopt(&mut gate, file);
        if locked.raw_config()?.nports == 0 {
            locked.set_settings(&Settings::default())?;
        }
        drop(locked);
        Ok(gate)
    }

    /// Opens an existing pinned gate; never loads anything. Readers take no
    /// lock (they check that the set did not change while they read);
    /// writers take the pin directory's lock for the duration of the change.
    pub fn open(pin_dir: &Path) -> Result<Gate> {
        Self::open_resolved(pins::resolve_existing(pin_dir)?)
    }

    fn open_resolved(pin_dir: PathBuf) -> Result<Gate> {
        if !pin_dir.join(maps::CONFIG).exists() {
            return Err(GateError::NotPinned(pin_dir));
        }
        check_layout(&pin_dir)?;
        let t0 = open_map(&pin_dir, maps::TRUST[0])?;
        let t1 = open_map(&pin_dir, maps::TRUST[1])?;
        let l0 = open_map(&pin_dir, maps::LABELS[0])?;
        let l1 = open_map(&pin_dir, maps::LABELS[1])?;
        Ok(Gate {
            config: open_map(&pin_dir, maps::CONFIG)?,
            active: open_map(&pin_dir, maps::ACTIVE)?,
            trust: [t0, t1],
            labels: [l0, l1],
            meta: open_map(&pin_dir, maps::META)?,
            protect: [
                open_map(&pin_dir, maps::PROTECT[0])?,
                open_map(&pin_dir, maps::PROTECT[1])?,
            ],
            counters: open_map(&pin_dir, maps::COUNTERS)?,
            lookup: open_map(&pin_dir, maps::LOOKUP)?,
            copies: None,
            grace: None,
            records: [
                record::Record::open(&pin_dir, maps::RECORD[0])?,
                record::Record::open(&pin_dir, maps::RECORD[1])?,
            ],
            pin_dir,
            locked: false,
            mirror: None,
        })
    }

    /// The pin directory, resolved (absolute, no `..`, no symbolic links).
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

fn open_map<T>(pin_dir: &Path, name: &'static str) -> Result<T>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let path = pin_dir.join(name);
    let err = |cause| GateError::Map {
        name,
        path: path.clone(),
        cause,
    };
    if !path.exists() {
        return Err(GateError::NotPinned(pin_dir.to_path_buf()));
    }
    let data = MapData::from_pin(&path).map_err(err)?;
    let map = Map::from_map_data(data).map_err(err)?;
    T::try_from(map).map_err(err)
}
