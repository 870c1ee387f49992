//! The web-of-trust engine: which keys (and which of their User IDs) our trust
//! roots vouch for, how far, with which exceptions, and why.
//!
//! # Design
//!
//! OpenPGP is parsed and verified once, at the edge, with sequoia-openpgp
//! ([`keyring`] loads and merges certificates, [`edges`] turns third-party
//! certifications into verified edges under explicit rules). Trust is then a
//! bounded breadth-first search over those edges ([`search`]). sequoia-wot is
//! not used: measured on debian-keyring (see the project's field notes) it
//! drops certifications made while the issuer had no then-valid
//! self-signature (40% of a minimized keyring, GnuPG counts them), its
//! `maximum_depth(k)` admits k+1 certifications, it does not filter expired or
//! revoked keys, and its path search took about 29 s where this model (one
//! full certification is enough) is reachability within N hops.
//!
//! # Certification validity rules (all at [`TrustSettings::reference_time`])
//!
//! A certification by issuer X over User ID U of key Y counts when:
//! - Y is valid under the policy, alive and not revoked; U has a valid,
//!   unexpired, unrevoked self-signature;
//! - X is in the keyring, valid under the policy, alive and not revoked, and
//!   the signature was made by X's primary key (verified cryptographically;
//!   a bad signature is counted and ignored);
//! - the signature's hash is accepted by the policy for collision-resistant
//!   uses (SHA-1 is not), it was created no later than the reference time and
//!   no earlier than X's primary key (GnuPG's rule too), and it has not
//!   expired at the reference time;
//! - it is the newest verified certification or certification revocation by
//!   X over U (a newer one replaces an older one; a newer revocation retracts).
//!
//! Like GnuPG, and unlike sequoia-wot, X does NOT need a self-signature that
//! was valid at the time it certified: minimized keyrings keep only the newest
//! self-signatures, and the issuer's validity is judged at the reference time.
//!
//! # Depth
//!
//! Roots are depth 0. A key certified by a root is depth 1; the local depth N
//! admits chains of at most N certifications (N = 1: only keys a root
//! certified). In `trust-signatures` mode a certification over Y with trust
//! level L lets Y introduce at most `min(L, remaining - 1)` further hops;
//! a plain certification (L = 0) authenticates Y but makes it no introducer.
//! Regular expressions of trust signatures constrain the User IDs that may be
//! authenticated further down the path (not the User ID they are made on).
//! A trust signature with a partial amount (< 120) does not delegate: one
//! full path is what this model requires. `certifications` mode ignores
//! trust levels and regular expressions altogether.
//!
//! # Exceptions
//!
//! A refused key is never trusted, but a path through it still counts (its
//! certifications are governed by `ignore_certifications_by` only); the
//! report says which of its User IDs would be authenticated otherwise
//! ([`UserIdTrust::authenticated_if_not_refused`]).
//!
//! # Not considered
//!
//! Certifications over direct keys (no User ID), certifications made by
//! certification-capable subkeys (GnuPG ignores them too), designated
//! revokers, and marginal trust (one full certification is enough).
//!
//! # Compared with GnuPG (pgp model, every key full, `--weak-digest SHA1`)
//!
//! On generated networks the two agree (tests/wot_gpg_oracle.rs). On
//! debian-keyring (905 certs, root = the key that certified most others,
//! reference time = the file's mtime 2022-12-24, depth 2) GnuPG trusts 610
//! keys and this engine 567, none the other way round. The 43 are three
//! deliberate differences, none a dropped certification that the rules above
//! say must count:
//! - 13 keys whose own User ID self-signatures are all SHA-1. Both sides
//!   reject those self-signatures (GnuPG marks them `%` in `--check-sigs`),
//!   so the keys are not valid under the policy here; GnuPG still deems 12 of
//!   them valid because they carry a certification by an ultimately trusted
//!   key (its fallback for keys without a valid self-signature), the 13th for
//!   a reason not pinned down (it has revoked User IDs).
//! - 28 keys with valid keys of their own that GnuPG reaches only over a User
//!   ID whose sole self-signature is SHA-1 (17 on the key itself, 11 on a key
//!   along the path, 3 of them also certified with SHA-1 by a trusted key):
//!   GnuPG's trustdb counts certifications over a User ID whose
//!   self-signature it rejected; the rule above requires a valid one.
//! - 2 keys whose primary User ID's binding set an expiry before the
//!   reference time while a newer self-signature on another User ID extended
//!   it: sequoia takes the primary User ID's binding (RFC 4880 5.2.3.3),
//!   GnuPG the newest self-signature.
//!
//! The policy is the caller's: a [`StandardPolicy::new`] judges hash
//! algorithms at the wall clock, not at the reference time, and sequoia
//! accepts SHA-1 self-signatures only until 2023-02-01. The figures above are
//! with such a policy after that date. With `StandardPolicy::at(reference
//! time)` 39 of the 43 become trusted too, but so do 41 keys GnuPG lists as
//! invalid (647 trusted): its `--weak-digest SHA1` rejects every SHA-1
//! self-signature, as the wall-clock policy does.
//!
//! [`StandardPolicy::new`]: sequoia_openpgp::policy::StandardPolicy::new
//!
//! # Cost
//!
//! Certifications whose issuer is not in the keyring are skipped without
//! verification; verification results are cached in a [`VerifyCache`] so a
//! recompute over an unchanged keyring ([`evaluate_cached`]) verifies nothing.

pub mod edges;
pub mod keyring;
pub mod report;
pub mod search;
pub mod time;

use std::collections::BTreeSet;
use std::time::SystemTime;

use sequoia_openpgp::Fingerprint;

pub use edges::{Edge, EdgeKind, EdgeStats, RejectReason, Rejected, VerifyCache};
pub use keyring::{Keyring, LoadProblem};
pub use report::{
    KeyStatus, KeyTrust, PathStep, RejectedCertification, TrustReport, UntrustedReason, UserIdTrust,
};
pub use search::{evaluate, evaluate_cached};

/// How trust flows beyond the keys the roots certify directly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntroducerMode {
    /// Any valid certification by a trusted key makes the certified key
    /// trusted (and an introducer), within the local depth.
    #[default]
    Certifications,
    /// Only trust signatures delegate, honouring their level and regular
    /// expressions, capped by the local depth; plain certifications make a
    /// key trusted for delivery only.
    TrustSignatures,
}

/// Caps against certificate flooding, applied per certificate to the
/// third-party certifications whose issuer IS in the keyring (certifications
/// by unknown issuers are skipped unverified and do not count against them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most certifications (by known issuers) considered per certificate;
    /// newest first, the rest are cut and reported.
    pub max_certifications_per_cert: usize,
    /// Most bytes of such certifications considered per certificate.
    pub max_certification_bytes_per_cert: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_certifications_per_cert: 1000,
            max_certification_bytes_per_cert: 1 << 20,
        }
    }
}

/// Everything a trust computation depends on besides the keyring and policy.
#[derive(Clone, Debug)]
pub struct TrustSettings {
    /// Our own keys: trusted outright, the start of every path.
    pub roots: BTreeSet<Fingerprint>,
    /// Longest chain of certifications from a root (default 2).
    pub depth: usize,
    pub mode: IntroducerMode,
    /// Keys never trusted themselves (their certifications still count).
    pub refuse: BTreeSet<Fingerprint>,
    /// Keys whose certifications do not count (they may still be trusted).
    pub ignore_certifications_by: BTreeSet<Fingerprint>,
    pub limits: Limits,
    /// The time at which every validity is judged.
    pub reference_time: SystemTime,
}

/// Default local depth.
pub const DEFAULT_DEPTH: usize = 2;

impl TrustSettings {
    /// Settings with default depth, mode and limits and no exceptions.
    pub fn new(roots: impl IntoIterator<Item = Fingerprint>, reference_time: SystemTime) -> Self {
        TrustSettings {
            roots: roots.into_iter().collect(),
            depth: DEFAULT_DEPTH,
            mode: IntroducerMode::default(),
            refuse: BTreeSet::new(),
            ignore_certifications_by: BTreeSet::new(),
            limits: Limits::default(),
            reference_time,
        }
    }
}

/// The e-mail address of a User ID, and its domain (from the address, or the
/// User ID itself when it is a bare domain name), both lowercased.
pub fn userid_email_domain(userid: &str) -> (Option<String>, Option<String>) {
    let uid = sequoia_openpgp::packet::UserID::from(userid);
    if let Ok(Some(email)) = uid.email_normalized() {
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_string());
        return (Some(email), domain);
    }
    let t = userid.trim();
    let is_domain = t.contains('.')
        && !t.starts_with('.')
        && !t.ends_with('.')
        && t.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if is_domain {
        (None, Some(t.to_ascii_lowercase()))
    } else {
        (None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_and_domain() {
        assert_eq!(
            userid_email_domain("Alice <Alice@Example.ORG>"),
            (Some("alice@example.org".into()), Some("example.org".into()))
        );
        assert_eq!(
            userid_email_domain("mx.example.net"),
            (None, Some("mx.example.net".into()))
        );
        assert_eq!(userid_email_domain("Just A Name"), (None, None));
        assert_eq!(userid_email_domain("bad..domain"), (None, None));
    }
}
