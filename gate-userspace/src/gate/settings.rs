//! The gate-wide settings (protected ports, observe or enforce, protected
//! destinations): validation, updates that change only what they name, diffs.

use gate_common::{maps, GateConfig, DEFAULT_PORT, MAX_PORTS};
use ipnet::Ipv6Net;

use super::{read_err, swap, update_err, Gate, GateError, Result};
use crate::model::prefixes::{PrefixSet, Verdict};

/// Gate-wide settings shared by every attached interface.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    pub ports: Vec<u16>,
    pub observe: bool,
    /// Empty: every destination on the interface is protected.
    pub protect: Vec<Ipv6Net>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ports: vec![DEFAULT_PORT],
            observe: false,
            protect: Vec::new(),
        }
    }
}

impl Settings {
    /// `observe` or `enforce`.
    pub fn mode_str(&self) -> &'static str {
        if self.observe {
            "observe"
        } else {
            "enforce"
        }
    }

    /// Whether the gate would drop every SYN to a protected port with `set`
    /// as its trusted set: enforcing, and not one allow entry.
    pub fn cuts_off_everyone(&self, set: &PrefixSet) -> bool {
        !self.observe && !set.iter().any(|e| e.verdict == Verdict::Allow)
    }

    /// What differs from `self` to `new`, one `what old -> new` item per
    /// setting (`ports 25 -> 25,587`); empty when nothing changes.
    pub fn changes_to(&self, new: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        if self.observe != new.observe {
            out.push(format!("mode {} -> {}", self.mode_str(), new.mode_str()));
        }
        if self.ports != new.ports {
            out.push(format!(
                "ports {} -> {}",
                ports_str(&self.ports),
                ports_str(&new.ports)
            ));
        }
        if self.protect != new.protect {
            out.push(format!(
                "protect {} -> {}",
                protect_str(&self.protect),
                protect_str(&new.protect)
            ));
        }
        out
    }

    pub fn validate(&self) -> Result<()> {
        if self.ports.is_empty() || self.ports.len() > MAX_PORTS {
            return Err(GateError::PortCount {
                got: self.ports.len(),
            });
        }
        if self.ports.contains(&0) {
            return Err(GateError::PortZero);
        }
        let max = gate_common::PROTECT_MAX_ENTRIES as usize;
        if self.protect.len() > max {
            return Err(GateError::TooManyProtected {
                got: self.protect.len(),
                max,
            });
        }
        Ok(())
    }
}

/// A change to the settings: `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsUpdate {
    pub ports: Option<Vec<u16>>,
    pub observe: Option<bool>,
    /// `Some(vec![])` protects every destination again.
    pub protect: Option<Vec<Ipv6Net>>,
}

impl SettingsUpdate {
    /// `current` with the named settings replaced.
    pub fn apply_to(&self, current: &Settings) -> Settings {
        let mut protect = self
            .protect
            .clone()
            .unwrap_or_else(|| current.protect.clone());
        // The gate reads them back as a sorted set.
        protect.sort();
        protect.dedup();
        Settings {
            ports: self.ports.clone().unwrap_or_else(|| current.ports.clone()),
            observe: self.observe.unwrap_or(current.observe),
            protect,
        }
    }
}

fn ports_str(ports: &[u16]) -> String {
    let p: Vec<String> = ports.iter().map(u16::to_string).collect();
    p.join(",")
}

fn protect_str(protect: &[Ipv6Net]) -> String {
    if protect.is_empty() {
        return "every destination".into();
    }
    let p: Vec<String> = protect.iter().map(Ipv6Net::to_string).collect();
    p.join(",")
}

/// Reading and replacing the settings in force (two slots, one selector bit).
impl Gate {
    fn active_word(&self) -> Result<u32> {
        self.active.get(&0, 0).map_err(read_err(maps::ACTIVE))
    }

    /// The settings slot in force (0 or 1).
    fn settings_slot(&self) -> Result<usize> {
        Ok(usize::from(
            self.active_word()? & gate_common::ACTIVE_SETTINGS != 0,
        ))
    }

    pub(super) fn raw_config(&self) -> Result<GateConfig> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let current = Settings {
            ports: vec![25, 587],
            observe: true,
            protect: vec![net("2001:db8::/64")],
        };
        assert_eq!(SettingsUpdate::default().apply_to(&current), current);
        let enforce = SettingsUpdate {
            observe: Some(false),
            ..Default::default()
        };
        let new = enforce.apply_to(&current);
        assert_eq!((new.observe, &new.ports), (false, &current.ports));
        assert_eq!(current.changes_to(&new), ["mode observe -> enforce"]);
        let everything = SettingsUpdate {
            ports: Some(vec![25]),
            protect: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(
            current.changes_to(&everything.apply_to(&current)),
            [
                "ports 25,587 -> 25",
                "protect 2001:db8::/64 -> every destination"
            ]
        );
        assert!(current.changes_to(&current).is_empty());
    }

    #[test]
    fn only_enforcing_without_an_allow_entry_cuts_off_everyone() {
        let deny_only = PrefixSet::parse("deny 2001:db8::/32 x\n", "t").unwrap();
        let allow = PrefixSet::parse("allow 2001:db8::/32 x\n", "t").unwrap();
        let enforce = Settings::default();
        let observe = Settings {
            observe: true,
            ..Default::default()
        };
        assert!(enforce.cuts_off_everyone(&PrefixSet::new()));
        assert!(enforce.cuts_off_everyone(&deny_only));
        assert!(!enforce.cuts_off_everyone(&allow));
        assert!(!observe.cuts_off_everyone(&PrefixSet::new()));
    }

    #[test]
    fn settings_problems_are_told_apart() {
        let with = |ports: Vec<u16>, protect: usize| Settings {
            ports,
            observe: false,
            protect: vec!["2001:db8::/64".parse().unwrap(); protect],
        };
        assert!(with(vec![25], 0).validate().is_ok());
        assert!(matches!(
            with(vec![], 0).validate(),
            Err(GateError::PortCount { got: 0 })
        ));
        assert!(matches!(
            with(vec![25; MAX_PORTS + 1], 0).validate(),
            Err(GateError::PortCount { .. })
        ));
        assert!(matches!(
            with(vec![25, 0], 0).validate(),
            Err(GateError::PortZero)
        ));
        let e = with(vec![25], gate_common::PROTECT_MAX_ENTRIES as usize + 1)
            .validate()
            .unwrap_err();
        assert!(matches!(e, GateError::TooManyProtected { .. }), "{e}");
        assert!(e.to_string().starts_with("at most "), "{e}");
    }
}
