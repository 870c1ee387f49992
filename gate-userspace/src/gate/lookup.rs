//! Writing compiled copies of the trusted set into the gate's arrays (through
//! mmap, only while the copy is inactive) and waiting out the readers of a copy.
//!
//! A copy is written only after the selector stopped naming it and an RCU
//! grace period has passed since (every XDP run that could still read it has
//! ended): the kernel waits for one in every `BPF_MAP_UPDATE_ELEM` on an
//! `ARRAY_OF_MAPS`, which [`Grace`] uses.

use std::{
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::Path,
    time::{Duration, Instant},
};

use aya::maps::MapInfo;
use gate_common::{
    lookup::{LookupHeader, HDR_RECORD},
    maps,
};

use super::{
    compile::Capacity,
    compiled::{Live, Patch},
    update_err, Gate, GateError, Result,
};

/// One array map (a copy's, or a record), mapped into this process.
pub(super) struct Mmap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value; writers hold the gate's lock.
unsafe impl Send for Mmap {}
unsafe impl Sync for Mmap {}

impl Mmap {
    fn open(dir: &Path, name: &'static str) -> Result<Mmap> {
        Ok(Self::open_counted(dir, name)?.0)
    }

    /// The mapping and the array's number of elements.
    pub(super) fn open_counted(dir: &Path, name: &'static str) -> Result<(Mmap, usize)> {
        let path = dir.join(name);
        let map_err = |cause| GateError::Map {
            name,
            path: path.clone(),
            cause,
        };
        let info = MapInfo::from_pin(&path).map_err(map_err)?;
        let elem = (info.value_size() as usize).next_multiple_of(8);
        let len = (elem * info.max_entries() as usize).next_multiple_of(4096);
        let fd = super::sys::obj_get(&path).map_err(super::io_err(&path))?;
        // SAFETY: a shared mapping of an mmapable array map of `len` bytes.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(GateError::Io {
                path,
                cause: std::io::Error::last_os_error(),
            });
        }
        Ok((
            Mmap {
                ptr: ptr as *mut u8,
                len,
            },
            info.max_entries() as usize,
        ))
    }

    pub(super) fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Copies `items` to the array from element `at` on (the elements'
    /// sizes are multiples of 8, as the kernel lays them out).
    fn write_at<T: Copy>(&mut self, at: usize, items: &[T]) {
        let start = at * std::mem::size_of::<T>();
        let bytes = std::mem::size_of_val(items);
        assert!(start + bytes <= self.len, "checked against the capacity");
        // SAFETY: in bounds; T is a repr(C) map value without padding.
        unsafe {
            std::ptr::copy_nonoverlapping(items.as_ptr() as *const u8, self.ptr.add(start), bytes);
        }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: mapped in `open` with this length.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

/// The arrays of both copies: buckets, lists, nodes, leaves.
pub(super) struct Copies {
    arrays: [[Mmap; 4]; 2],
}

impl Copies {
    fn open(dir: &Path) -> Result<Copies> {
        let copy = |c: usize| -> Result<[Mmap; 4]> {
            Ok([
                Mmap::open(dir, maps::BUCKETS[c])?,
                Mmap::open(dir, maps::LISTS[c])?,
                Mmap::open(dir, maps::NODES[c])?,
                Mmap::open(dir, maps::LEAVES[c])?,
            ])
        };
        Ok(Copies {
            arrays: [copy(0)?, copy(1)?],
        })
    }
}

/// An `ARRAY_OF_MAPS` whose element update makes the kernel wait for an
/// RCU grace period (`maybe_wait_bpf_programs`).
pub(super) struct Grace {
    outer: OwnedFd,
    inner: OwnedFd,
}

impl Grace {
    fn new() -> std::io::Result<Grace> {
        let inner = super::sys::map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 1, None)?;
        let outer = super::sys::map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 1, Some(&inner))?;
        Ok(Grace { outer, inner })
    }

    fn wait(&self) -> std::io::Result<()> {
        let fd = self.inner.as_raw_fd() as u32;
        super::sys::map_update(self.outer.as_fd(), &0u32.to_ne_bytes(), &fd.to_ne_bytes())
    }
}

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The capacity of the compiled copies as pinned in `dir`.
pub(super) fn pinned_capacity(dir: &Path) -> Result<Capacity> {
    let n = |name: &'static str| -> Result<u32> {
        let path = dir.join(name);
        Ok(MapInfo::from_pin(&path)
            .map_err(|cause| GateError::Map { name, path, cause })?
            .max_entries())
    };
    Ok(Capacity {
        buckets: n(maps::BUCKETS[0])?,
        lists: n(maps::LISTS[0])?,
        nodes: n(maps::NODES[0])?,
        leaf_words: n(maps::LEAVES[0])?,
        record: n(maps::RECORD[0])?,
    })
}

impl Gate {
    /// The capacity of each compiled copy.
    pub fn lookup_capacity(&self) -> Result<Capacity> {
        pinned_capacity(&self.pin_dir)
    }

    /// The header of compiled copy `copy` (flags 0: the datapath reads
    /// trie `copy` instead).
    pub fn lookup_header(&self, copy: usize) -> Result<LookupHeader> {
        self.lookup
            .get(&(copy as u32), 0)
            .map_err(super::read_err(maps::LOOKUP))
    }

    /// Waits until no XDP run that started before can still be reading.
    pub(super) fn grace(&mut self) -> Result<Duration> {
        let t = Instant::now();
        if self.grace.is_none() {
            self.grace = Some(Grace::new().map_err(|e| self.grace_err(e))?);
        }
        let g = self.grace.as_ref().expect("made");
        g.wait().map_err(|e| self.grace_err(e))?;
        Ok(t.elapsed())
    }

    fn grace_err(&self, cause: std::io::Error) -> GateError {
        GateError::Io {
            path: self.pin_dir.join(maps::LOOKUP),
            cause,
        }
    }

    /// Writes `patch` of `live` into copy `copy`, header last; `None`
    /// marks the copy invalid (the datapath then reads the LPM trie of that
    /// half). `record`: the half keeps its set in its record
    /// (`HDR_RECORD`). The copy must be inactive, and unread since (see
    /// [`Gate::grace`]), and hold what `live` held before the patch unless
    /// the patch is full.
    pub(super) fn write_copy(
        &mut self,
        copy: usize,
        compiled: Option<(&Live, &Patch)>,
        record: bool,
    ) -> Result<()> {
        let header = match compiled {
            None => LookupHeader::default(),
            Some((live, patch)) => {
                if self.copies.is_none() {
                    self.copies = Some(Copies::open(&self.pin_dir)?);
                }
                let a = &mut self.copies.as_mut().expect("opened").arrays[copy];
                match &patch.buckets {
                    None => a[0].write_at(0, live.buckets()),
                    Some(dirty) => {
                        for i in dirty.iter().map(|i| *i as usize) {
                            a[0].write_at(i, &live.buckets()[i..=i]);
                        }
                    }
                }
                a[1].write_at(patch.lists_from, &live.lists()[patch.lists_from..]);
                a[2].write_at(patch.nodes_from, &live.nodes()[patch.nodes_from..]);
                a[3].write_at(patch.leaves_from, &live.leaves()[patch.leaves_from..]);
                let mut h = live.header();
                if record {
                    h.flags |= HDR_RECORD;
                }
                h
            }
        };
        self.lookup
            .set(copy as u32, header, 0)
            .map_err(update_err(maps::LOOKUP))
    }
}
