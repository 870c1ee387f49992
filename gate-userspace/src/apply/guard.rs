//! The load guard: what a new trusted set may not do without the operator's
//! say-so (leave nothing trusted, lose too much, trust half the Internet).

use super::delta::Delta;
use crate::model::prefixes::{PrefixEntry, PrefixSet, Verdict};

/// An allow entry broader than this (`/16`) covers more than any registry
/// hands out at once; loading one needs force.
pub const MIN_ALLOW_LEN: u8 = 16;

/// How much a load may take away from the trusted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadGuard {
    /// Most of the loaded allow entries a load may take away, in percent
    /// (a load that leaves no allow entry at all is refused regardless).
    pub max_shrink_percent: u8,
    /// Load anyway: incomplete inputs, any shrink, any breadth.
    pub force: bool,
}

/// A new set the guard refused; nothing was loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("refusing to load: the new set would take away {} of the {loaded_allows} trusted (allow) entries loaded now, {}; nothing was loaded. It would lose: {}. If that is intended, force the load", lost.len(), shrink_reason(*remaining_allows, *max_shrink_percent), list(lost))]
    Shrink {
        loaded_allows: usize,
        remaining_allows: usize,
        max_shrink_percent: u8,
        /// Allow entries of the loaded set that the new set removes or turns to deny.
        lost: Vec<PrefixEntry>,
    },
    #[error("refusing to load: {} allow entr{} broader than /{MIN_ALLOW_LEN} would trust a vast share of the Internet: {}; nothing was loaded. If that is intended, force the load", broad.len(), if broad.len() == 1 { "y is" } else { "ies are" }, list(broad))]
    TooBroad { broad: Vec<PrefixEntry> },
}

fn shrink_reason(remaining: usize, percent: u8) -> String {
    if remaining == 0 {
        "leaving nothing trusted (every SYN to a protected port would be dropped)".into()
    } else {
        format!("more than the {percent}% bound")
    }
}

/// The first ten entries as `verdict prefix label`, and how many more.
fn list(entries: &[PrefixEntry]) -> String {
    let mut s = entries
        .iter()
        .take(10)
        .map(|e| {
            format!("{} {} {}", e.verdict, e.prefix, e.label)
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ");
    if entries.len() > 10 {
        s.push_str(&format!(" and {} more", entries.len() - 10));
    }
    s
}

impl LoadGuard {
    /// Refuses `after` when it leaves nothing trusted while `before` trusted
    /// something, takes away more than the bound of `before`'s allow entries,
    /// or allows a prefix broader than [`MIN_ALLOW_LEN`].
    pub fn check(&self, before: &PrefixSet, after: &PrefixSet) -> Result<(), GuardError> {
        self.check_delta(before, &Delta::between(before, after), after)
    }

    /// [`LoadGuard::check`] with the changes already found: what is lost
    /// comes from `delta`; `before`'s allows are counted only when some
    /// are lost, and `after` is scanned once for broad allows.
    pub fn check_delta(
        &self,
        before: &PrefixSet,
        delta: &Delta,
        after: &PrefixSet,
    ) -> Result<(), GuardError> {
        if self.force {
            return Ok(());
        }
        let broad: Vec<PrefixEntry> = after
            .iter()
            .filter(|e| e.verdict == Verdict::Allow && e.prefix.prefix_len() < MIN_ALLOW_LEN)
            .cloned()
            .collect();
        if !broad.is_empty() {
            return Err(GuardError::TooBroad { broad });
        }
        let (lost, gained) = delta.allow_moves();
        if lost.is_empty() {
            // Nothing trusted is taken away: neither a shrink nor emptying.
            return Ok(());
        }
        let loaded_allows = before
            .iter()
            .filter(|e| e.verdict == Verdict::Allow)
            .count();
        let remaining_allows = loaded_allows - lost.len() + gained;
        let bound = (loaded_allows * usize::from(self.max_shrink_percent) / 100).max(1);
        let emptied = loaded_allows > 0 && remaining_allows == 0;
        if emptied || lost.len() > bound {
            return Err(GuardError::Shrink {
                loaded_allows,
                remaining_allows,
                max_shrink_percent: self.max_shrink_percent,
                lost,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lines: &str) -> PrefixSet {
        PrefixSet::parse(lines, "t").unwrap()
    }

    const GUARD: LoadGuard = LoadGuard {
        max_shrink_percent: 50,
        force: false,
    };

    #[test]
    fn refuses_emptying_and_large_shrinks() {
        let four = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\nallow 2001:db8:3::/48 c\nallow 2001:db8:4::/48 d\n");
        let e = GUARD.check(&four, &PrefixSet::new()).unwrap_err();
        let GuardError::Shrink {
            loaded_allows,
            remaining_allows,
            ref lost,
            ..
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!((loaded_allows, remaining_allows, lost.len()), (4, 0, 4));
        assert!(e.to_string().contains("leaving nothing trusted"), "{e}");
        assert!(e.to_string().contains("allow 2001:db8:1::/48 a"), "{e}");
        // Only denies left is nothing trusted too.
        let denies = set("deny 2001:db8:1::/48 a\n");
        assert!(GUARD.check(&four, &denies).is_err());
        // Two of four is at the bound: allowed; three is past it.
        let two = set("allow 2001:db8:1::/48 a\nallow 2001:db8:2::/48 b\n");
        assert!(GUARD.check(&four, &two).is_ok());
        let one = set("allow 2001:db8:1::/48 a\n");
        let e = GUARD.check(&four, &one).unwrap_err();
        assert!(e.to_string().contains("more than the 50% bound"), "{e}");
        // Growing, or starting from nothing, is always fine; force overrides.
        assert!(GUARD.check(&PrefixSet::new(), &one).is_ok());
        assert!(GUARD.check(&one, &four).is_ok());
        let force = LoadGuard {
            force: true,
            ..GUARD
        };
        assert!(force.check(&four, &PrefixSet::new()).is_ok());
        // A single entry may be replaced by another.
        let other = set("allow 2001:db8:9::/48 z\n");
        assert!(GUARD.check(&one, &other).is_ok());
    }

    #[test]
    fn refuses_allows_broader_than_a_registry_block() {
        for broad in [
            "allow ::/0 everyone\n",
            "allow 2000::/3\n",
            "allow 2000::/15\n",
        ] {
            let e = GUARD.check(&PrefixSet::new(), &set(broad)).unwrap_err();
            assert!(matches!(e, GuardError::TooBroad { .. }), "{broad}");
            assert!(e.to_string().contains("broader than /16"), "{e}");
        }
        assert!(GUARD
            .check(&PrefixSet::new(), &set("allow 2001::/16\n"))
            .is_ok());
        assert!(GUARD.check(&PrefixSet::new(), &set("deny ::/0\n")).is_ok());
    }
}
