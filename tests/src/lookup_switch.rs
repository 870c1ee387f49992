//! For benchmarks: switch the active half's compiled lookup off (the program
//! then answers from the LPM trie, the baseline it must beat) and back on.

use std::path::Path;

use aya::maps::{Array, Map, MapData};
use gate_common::{lookup::LookupHeader, maps};
use wotgate::gate::Gate;

/// Writes the active half's compiled-lookup header without its flags (so
/// the program reads the LPM trie), or `saved` back; returns the header
/// that was there. The next load of the set writes a fresh header anyway.
pub fn switch(gate: &Gate, saved: Option<LookupHeader>) -> anyhow::Result<LookupHeader> {
    let pin: &Path = gate.pin_dir();
    let data = MapData::from_pin(pin.join(maps::LOOKUP))?;
    let mut hdrs: Array<_, LookupHeader> = Map::from_map_data(data)?.try_into()?;
    let t = gate.active_trie()? as u32;
    let h = hdrs.get(&t, 0)?;
    hdrs.set(t, saved.unwrap_or(LookupHeader { flags: 0, ..h }), 0)?;
    Ok(h)
}
