//! The gate in the kernel as user space sees it: pinned maps and links, the
//! trusted-set swap, inspection, address checks, pcap replay and program
//! upgrades in place.

pub mod attach;
pub mod capture;
pub mod compile;
pub mod compiled;
mod error;
pub mod inspect;
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
pub use lock::{set_lock_wait, LockHolder, LockWait, Waiting};
pub use pins::{purge, purge_if_unattached, PurgeReport};
pub use settings::{Settings, SettingsUpdate};
pub use upgrade::{UpgradeError, Upgraded};

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    maps::{lpm_trie::LpmTrie, Array, HashMap, IterableMap, Map, MapData, MapInfo, PerCpuArray},
    programs::Xdp,
    EbpfLoader,
};
use aya_obj::programs::XdpAttachType;
use gate_common::{lookup::LookupHeader, maps, Entry, GateConfig, Ipv6Bytes, Label, Meta};
use ipnet::Ipv6Net;

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

    fn active_word(&self) -> Result<u32> {
        self.active.get(&0, 0).map_err(read_err(maps::ACTIVE))
    }

    /// The settings slot in force (0 or 1).
    fn settings_slot(&self) -> Result<usize> {
        Ok(usize::from(
            self.active_word()? & gate_common::ACTIVE_SETTINGS != 0,
        ))
    }

    fn raw_config(&self) -> Result<GateConfig> {
        let slot = self.settings_slot()? as u32;
        self.config.get(&slot, 0).map_err(read_err(maps::CONFIG))
    }

    /// The gate-wide settings currently in force, read from one slot (read
    /// again if a writer flipped the slot meanwhile).
    pub fn settings(&self) -> Result<Settings> {
        let mut slot = self.settings_slot()?;
        for _ in 0..8 {
            let s = self.read_settings(slot)?;
            let now = self.settings_slot()?;
            if now == slot {
                return Ok(s);
            }
            slot = now;
        }
        // Still flipping: take the lock and read once more.
        let _guard = self.hold()?;
        self.read_settings(self.settings_slot()?)
    }

    fn read_settings(&self, slot: usize) -> Result<Settings> {
        let c = self
            .config
            .get(&(slot as u32), 0)
            .map_err(read_err(maps::CONFIG))?;
        let n = (c.nports as usize).min(gate_common::MAX_PORTS);
        let mut protect: Vec<Ipv6Net> = self.protect[slot]
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

    /// Replaces the gate-wide settings atomically: the inactive settings
    /// slot (its protected-destination trie, then its configuration) is
    /// written whole, then the slot bit of the selector flips in one store,
    /// so the datapath sees the old settings or the new ones, never a mix.
    /// A writer killed before the flip leaves the settings in force as they
    /// were; the next one rewrites the inactive slot from scratch.
    pub fn set_settings(&mut self, s: &Settings) -> Result<()> {
        s.validate()?;
        let _guard = self.hold()?;
        let word = self.active_word()?;
        let next = usize::from(word & gate_common::ACTIVE_SETTINGS == 0);
        let upd = update_err(maps::PROTECT[next]);
        let old: Vec<_> = self.protect[next].keys().filter_map(|k| k.ok()).collect();
        let wanted: Vec<_> = s
            .protect
            .iter()
            .map(|n| aya::maps::lpm_trie::Key::new(n.prefix_len() as u32, n.network().octets()))
            .collect();
        for k in old {
            let keep = wanted
                .iter()
                .any(|w| w.prefix_len() == k.prefix_len() && w.data() == k.data());
            if !keep {
                self.protect[next].remove(&k).map_err(upd)?;
            }
        }
        for k in &wanted {
            self.protect[next].insert(k, 1, 0).map_err(upd)?;
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
            .set(next as u32, cfg, 0)
            .map_err(update_err(maps::CONFIG))?;
        swap::step_settings();
        self.active
            .set(0, word ^ gate_common::ACTIVE_SETTINGS, 0)
            .map_err(update_err(maps::ACTIVE))?;
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
    /// Takes the pin directory's lock (waiting as [`set_lock_wait`] says)
    /// and returns this handle holding it: writers called through it do
    /// not take it again. Hold it only around kernel work, never while
    /// writing output. Fails with [`GateError::Removed`] when the gate was
    /// purged (or replaced) while this process waited.
    pub fn lock(&mut self) -> Result<Locked<'_>> {
        let file = lock::lock_dir(&self.pin_dir)?;
        self.check_current()?;
        Ok(Locked::adopt(self, file))
    }

    /// The lock for one write: `None` when this handle holds it already.
    fn hold(&self) -> Result<Option<File>> {
        if self.locked {
            return Ok(None);
        }
        let file = lock::lock_dir(&self.pin_dir)?;
        self.check_current()?;
        Ok(Some(file))
    }

    /// The pins are still the maps this handle opened: nobody purged or
    /// re-created the gate meanwhile (a write would go to orphaned maps).
    fn check_current(&self) -> Result<()> {
        let ours = self.active.map().info().ok().map(|i| i.id());
        let pinned = MapInfo::from_pin(self.pin_dir.join(maps::ACTIVE))
            .ok()
            .map(|i| i.id());
        if ours.is_some() && ours == pinned {
            Ok(())
        } else {
            Err(GateError::Removed(self.pin_dir.clone()))
        }
    }
}

/// A gate handle holding the pin directory's lock; the lock is released
/// when it is dropped. Derefs to the [`Gate`].
pub struct Locked<'g> {
    gate: &'g mut Gate,
    _file: File,
}

impl<'g> Locked<'g> {
    fn adopt(gate: &'g mut Gate, file: File) -> Locked<'g> {
        gate.locked = true;
        Locked { gate, _file: file }
    }

    /// Removes the gate (links first, which detaches it everywhere), still
    /// under this lock; the handle is of no use afterwards.
    pub fn purge(self) -> Result<PurgeReport> {
        pins::purge_locked(&self.gate.pin_dir)
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Gate;
    fn deref(&self) -> &Gate {
        self.gate
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Gate {
        self.gate
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.gate.locked = false;
    }
}

/// Refuses pins whose metadata record is not this version's: a gate pinned
/// by an older wotgate keeps its old layout until it is purged.
fn check_layout(pin_dir: &Path) -> Result<()> {
    let info = |name: &'static str| {
        let path = pin_dir.join(name);
        MapInfo::from_pin(&path).map_err(|cause| GateError::Map { name, path, cause })
    };
    let wanted = std::mem::size_of::<Meta>() as u32;
    let found = info(maps::META)?.value_size();
    if found != wanted {
        return Err(GateError::PinLayout {
            dir: pin_dir.to_path_buf(),
            map: maps::META,
            found: format!("{found}-byte records"),
            wanted: format!("{wanted}-byte records"),
        });
    }
    // Before the compiled lookup, there was no WG_LOOKUP (nor its arrays).
    if !pin_dir.join(maps::LOOKUP).exists() {
        return Err(GateError::PinLayout {
            dir: pin_dir.to_path_buf(),
            map: maps::LOOKUP,
            found: "nothing (it is not pinned: the gate predates the compiled lookup)".into(),
            wanted: format!(
                "{} and its arrays {}/{}/{}/{}_0 and _1",
                maps::LOOKUP,
                maps::BUCKETS[0].trim_end_matches("_0"),
                maps::LISTS[0].trim_end_matches("_0"),
                maps::NODES[0].trim_end_matches("_0"),
                maps::LEAVES[0].trim_end_matches("_0")
            ),
        });
    }
    // Before the records, each half's LPM trie held its whole set.
    if !pin_dir.join(maps::RECORD[0]).exists() || !pin_dir.join(maps::RECORD[1]).exists() {
        return Err(GateError::PinLayout {
            dir: pin_dir.to_path_buf(),
            map: maps::RECORD[0],
            found: "nothing (it is not pinned: the gate keeps its set in the LPM tries)".into(),
            wanted: format!("{} and {}", maps::RECORD[0], maps::RECORD[1]),
        });
    }
    // Trie nodes grew by their per-word counts (one popcount a level).
    let wanted = std::mem::size_of::<gate_common::lookup::Node>() as u32;
    let found = info(maps::NODES[0])?.value_size();
    if found != wanted {
        return Err(GateError::PinLayout {
            dir: pin_dir.to_path_buf(),
            map: maps::NODES[0],
            found: format!("{found}-byte trie nodes"),
            wanted: format!("{wanted}-byte trie nodes"),
        });
    }
    // Before the settings had two slots, WG_CONFIG had one element.
    let found = info(maps::CONFIG)?.max_entries();
    if found != gate_common::CONFIG_SLOTS {
        return Err(GateError::PinLayout {
            dir: pin_dir.to_path_buf(),
            map: maps::CONFIG,
            found: format!("{found} settings slot(s)"),
            wanted: format!("{}", gate_common::CONFIG_SLOTS),
        });
    }
    Ok(())
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
