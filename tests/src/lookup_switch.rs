//! For benchmarks: switch the active half's compiled lookup off (the program
//! then answers from the LPM trie, the baseline it must beat) and back on.

use std::{os::fd::AsFd, path::Path};

use anyhow::anyhow;
use aya::maps::{Array, Map, MapData};
use gate_common::{
    lookup::{LookupHeader, HDR_RECORD},
    maps, Entry,
};
use wotgate::gate::{sys, Gate};

/// Writes the active half's compiled-lookup header without its flags (so
/// the program reads the LPM trie), or `saved` back; returns the header
/// that was there. The next load of the set writes a fresh header anyway.
///
/// A half that keeps its set in its record holds only the prefixes shorter
/// than /32 in its trie: switching off fills the trie with the rest of the
/// set first (verdicts only, label id 0: the program reads no label), and
/// switching back on deletes them again, so the trie compared is the one
/// the LPM-only design keeps.
pub fn switch(gate: &Gate, saved: Option<LookupHeader>) -> anyhow::Result<LookupHeader> {
    let pin: &Path = gate.pin_dir();
    let data = MapData::from_pin(pin.join(maps::LOOKUP))?;
    let mut hdrs: Array<_, LookupHeader> = Map::from_map_data(data)?.try_into()?;
    let t = gate.active_trie()?;
    let h = hdrs.get(&(t as u32), 0)?;
    let record = saved.unwrap_or(h).flags & HDR_RECORD != 0;
    if record && saved.is_none() {
        fill_trie(gate, t, true)?;
    }
    hdrs.set(t as u32, saved.unwrap_or(LookupHeader { flags: 0, ..h }), 0)?;
    if record && saved.is_some() {
        fill_trie(gate, t, false)?;
    }
    Ok(h)
}

/// Writes (`fill`) or deletes the prefixes of /32 or longer of half `t`'s
/// set into or from its trie, in batches.
fn fill_trie(gate: &Gate, t: usize, fill: bool) -> anyhow::Result<()> {
    let set = gate.read_set(t)?;
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    for e in set.iter().filter(|e| e.prefix.prefix_len() >= 32) {
        keys.extend_from_slice(&u32::from(e.prefix.prefix_len()).to_ne_bytes());
        keys.extend_from_slice(&e.prefix.network().octets());
        let v = Entry {
            verdict: e.verdict.to_raw(),
            source: 0,
        };
        values.extend_from_slice(&v.verdict.to_ne_bytes());
        values.extend_from_slice(&v.source.to_ne_bytes());
    }
    let data = MapData::from_pin(gate.pin_dir().join(maps::TRUST[t]))?;
    let fd = data.fd().as_fd();
    let r = if fill {
        sys::map_update_batch(fd, &keys, 20, &values, 8)
    } else {
        sys::map_delete_batch(fd, &keys, 20)
    };
    r.map_err(|(done, e)| anyhow!("trie {t}: batch stopped after {done}: {e}"))
}
