//! When a certificate's judgement may change with the reference time: the
//! times its signatures and keys name, so a judgement made at one reference
//! time is kept for any other with none of those times in between.
//!
//! Everything a judgement reads compares the reference time with such a
//! time (a signature's creation and expiration, a key's creation and
//! expiration); between two of them every comparison gives what it gave.
//! Each time is taken with sequoia's clock-skew tolerance either side, so a
//! comparison made with that tolerance is covered as well.

use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::packet::signature::subpacket::CLOCK_SKEW_TOLERANCE;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::Cert;

/// The times of a certificate (sorted, without repeats) at which its
/// judgement may change: those of `cert` (stripped) and of its third-party
/// certifications, given as (creation, expiration).
pub(crate) fn events(
    cert: &Cert,
    certifications: impl Iterator<Item = (SystemTime, Option<SystemTime>)>,
) -> Arc<[SystemTime]> {
    let keys: Vec<SystemTime> = cert.keys().map(|k| k.key().creation_time()).collect();
    let mut at: Vec<SystemTime> = keys.clone();
    let sigs = cert
        .primary_key()
        .signatures()
        .chain(cert.userids().flat_map(|u| u.signatures()))
        .chain(cert.user_attributes().flat_map(|u| u.signatures()))
        .chain(cert.keys().subkeys().flat_map(|k| k.signatures()))
        .chain(cert.unknowns().flat_map(|u| u.signatures()))
        .chain(cert.bad_signatures());
    for s in sigs {
        add_signature(&mut at, s, &keys);
    }
    at.extend(certifications.flat_map(|(c, e)| [Some(c), e]).flatten());
    let mut all: Vec<SystemTime> = at
        .iter()
        .flat_map(|&t| {
            [
                t.checked_sub(CLOCK_SKEW_TOLERANCE),
                Some(t),
                t.checked_add(CLOCK_SKEW_TOLERANCE),
            ]
        })
        .flatten()
        .collect();
    all.sort_unstable();
    all.dedup();
    all.into()
}

/// A signature's times: creation, expiration, and the expiration it gives
/// any of `keys` (a key validity period counts from the key's creation).
fn add_signature(at: &mut Vec<SystemTime>, s: &Signature, keys: &[SystemTime]) {
    at.extend(s.signature_creation_time());
    at.extend(s.signature_expiration_time());
    if let Some(p) = s.key_validity_period() {
        at.extend(keys.iter().filter_map(|&k| k.checked_add(p)));
    }
}

/// Where a judgement made at `at` holds: every reference time with none of
/// the certificate's event times between it and `at` (both included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    at: SystemTime,
    /// The latest event at or before `at`, the earliest at or after it.
    before: Option<SystemTime>,
    after: Option<SystemTime>,
}

impl Window {
    /// The window of a judgement at `at` given the certificate's `events`
    /// (sorted).
    pub(crate) fn new(events: &[SystemTime], at: SystemTime) -> Window {
        let i = events.partition_point(|&e| e < at);
        let after = events.get(i).copied();
        let j = events.partition_point(|&e| e <= at);
        let before = j.checked_sub(1).map(|j| events[j]);
        Window { at, before, after }
    }

    /// Whether the judgement made at `self.at` is the one at `t`.
    pub(crate) fn holds(&self, t: SystemTime) -> bool {
        t == self.at || (self.before.is_none_or(|b| b < t) && self.after.is_none_or(|a| t < a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn holds_strictly_between_events() {
        let ev = [at(10), at(20), at(30)];
        let w = Window::new(&ev, at(15));
        assert!(w.holds(at(15)) && w.holds(at(11)) && w.holds(at(19)));
        assert!(!w.holds(at(10)) && !w.holds(at(20)) && !w.holds(at(25)));
        // Judged on an event: only that very time.
        let w = Window::new(&ev, at(20));
        assert!(w.holds(at(20)) && !w.holds(at(19)) && !w.holds(at(21)));
        // Before the first, after the last: open-ended.
        assert!(Window::new(&ev, at(5)).holds(at(0)));
        assert!(Window::new(&ev, at(35)).holds(at(1_000_000)));
        assert!(Window::new(&[], at(5)).holds(at(1_000_000)));
    }
}
