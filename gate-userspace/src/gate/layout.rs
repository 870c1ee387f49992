//! The check that pinned maps have this version's layout: a gate pinned by
//! an older wotgate is refused with the purge-and-attach message.

use std::path::Path;

use aya::maps::MapInfo;
use gate_common::{maps, Meta};

use super::{GateError, Result};

/// Refuses pins whose metadata record is not this version's: a gate pinned
/// by an older wotgate keeps its old layout until it is purged.
pub(super) fn check_layout(pin_dir: &Path) -> Result<()> {
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
