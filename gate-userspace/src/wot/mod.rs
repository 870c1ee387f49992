//! The web-of-trust engine: which keys (and which of their User IDs) our trust
//! roots vouch for, how far, with which exceptions, and why.
//!
//! # Design
//!
//! OpenPGP is parsed and verified once, at the edge, with sequoia-openpgp
//! (`keyring/` loads and merges certificates, `edges/` turns third-party
//! certifications into verified edges under explicit rules). Trust is then a
//! bounded breadth-first search over those edges (`search.rs`). sequoia-wot is
//! not used: measured on debian-keyring (`docs/wot.md`) it
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
//! How its results compare with GnuPG's on debian-keyring, and why, is in
//! `docs/wot.md`.
//!
//! # Cost
//!
//! The keyring keeps third-party certifications compact (their packet
//! bytes), certificates stripped of them, and only counts certifications
//! whose issuer it does not hold (`keyring/`). A certification is
//! verified only when a search follows its issuer or a report explains its
//! target (`edges/`): the daemon's computation ([`evaluate_lazy`])
//! verifies the certifications made by the keys its search reaches as
//! introducers, and explains (verifying what that needs) only the keys it
//! is asked about; [`evaluate_cached`] explains every key. Both give the
//! same answers (tests/wot_cache.rs). Verification results are cached in a
//! [`VerifyCache`] (also on disk) so a recompute verifies nothing twice.
//! The daemon keeps a [`TrustEngine`] between refreshes: certificates are
//! parsed once per distinct bytes and judged again only when the reference
//! time passes one of their signatures' or keys' times (`chunks.rs`,
//! `window.rs`, `engine.rs`); its answers are those of [`evaluate_lazy`]
//! (tests/wot_engine.rs).

pub mod alloc;
mod chunks;
mod edges;
mod engine;
mod evaluate;
mod judge;
mod keyring;
mod part;
mod patch;
mod prescan;
mod report;
mod search;
mod verify_cache;
mod webs;
mod window;

pub use chunks::ParseCache;
pub use edges::{EdgeKind, EdgeStats, RejectReason, VerifyCache};
pub use engine::{EngineRun, Evaluated, TrustEngine};
pub use evaluate::{evaluate, evaluate_cached, evaluate_lazy};
pub use keyring::{Keyring, LoadProblem};
pub use report::{
    KeyStatus, KeyTrust, PathStep, RejectedCertification, TrustReport, UntrustedReason, UserIdTrust,
};
pub use verify_cache::CACHE_FILE as VERIFY_CACHE_FILE;
pub use webs::{SharedGraph, Standing};

pub use crate::model::settings::{IntroducerMode, Limits, TrustSettings, DEFAULT_DEPTH};

/// The e-mail address of a User ID, and its domain (from the address, or the
/// User ID itself when it is a bare domain name), both lowercased.
pub(crate) fn userid_email_domain(userid: &str) -> (Option<String>, Option<String>) {
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
