//! The result of a trust computation: a verdict per key and per User ID, the
//! path that authenticates each binding, and the reason when there is none.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use sequoia_openpgp::types::HashAlgorithm;
use sequoia_openpgp::Fingerprint;

use super::edges::{EdgeKind, EdgeStats, RejectReason};

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// One of our trust roots (valid at the reference time).
    Root,
    /// Authenticated through a chain of `depth` certifications.
    Trusted {
        depth: usize,
    },
    /// Listed in `refuse`. See [`UserIdTrust::authenticated_if_not_refused`].
    Refused,
    Untrusted {
        reason: UntrustedReason,
    },
}

impl KeyStatus {
    /// Whether the key may be used (root or trusted).
    pub fn is_trusted(&self) -> bool {
        matches!(self, KeyStatus::Root | KeyStatus::Trusted { .. })
    }
}

/// Why a key is not trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UntrustedReason {
    /// No certification path from a root at all.
    NoPath,
    /// A path exists but needs `needs_depth` certifications (> local depth).
    PathTooLong { needs_depth: usize },
    /// Reachable only through keys listed in `ignore-certifications-by`.
    OnlyThroughIgnoredIntroducer { introducers: Vec<Fingerprint> },
    /// `trust-signatures` mode: reachable only through plain certifications
    /// or outside the regular-expression scope of the trust signatures.
    NotDelegated,
    /// The key itself is revoked at the reference time.
    Revoked,
    /// The key itself has expired at the reference time.
    Expired,
    /// The key is not valid under the policy (e.g. weak self-signature).
    InvalidKey(String),
    /// The key has no valid, unrevoked User ID to authenticate.
    NoValidUserId,
    /// A usable introducer certified it, but that certification does not count.
    Certification {
        issuer: Fingerprint,
        reason: RejectReason,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::BadSignature => write!(f, "bad signature"),
            RejectReason::WeakHash(h) => write!(f, "weak hash ({h}) rejected by the policy"),
            RejectReason::PredatesIssuer => write!(f, "made before the issuer key existed"),
            RejectReason::FromTheFuture => write!(f, "made after the reference time"),
            RejectReason::Expired => write!(f, "certification expired"),
            RejectReason::Revoked => write!(f, "certification revoked"),
            RejectReason::IssuerInvalid => write!(f, "issuer not valid"),
            RejectReason::CutByLimits => write!(f, "cut by flooding limits"),
        }
    }
}

impl fmt::Display for UntrustedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UntrustedReason::NoPath => write!(f, "no path from a root"),
            UntrustedReason::PathTooLong { needs_depth } => {
                write!(f, "path too long (needs depth {needs_depth})")
            }
            UntrustedReason::OnlyThroughIgnoredIntroducer { introducers } => {
                write!(f, "only through an ignored introducer (")?;
                for (i, x) in introducers.iter().enumerate() {
                    write!(f, "{}{x}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, ")")
            }
            UntrustedReason::NotDelegated => {
                write!(f, "no trust signature delegates to it (only plain certifications or out of scope)")
            }
            UntrustedReason::Revoked => write!(f, "revoked"),
            UntrustedReason::Expired => write!(f, "expired"),
            UntrustedReason::InvalidKey(e) => write!(f, "invalid under the policy: {e}"),
            UntrustedReason::NoValidUserId => write!(f, "no valid User ID"),
            UntrustedReason::Certification { issuer, reason } => {
                write!(f, "certification by {issuer}: {reason}")
            }
        }
    }
}

/// One certification on a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathStep {
    pub issuer: Fingerprint,
    pub target: Fingerprint,
    /// The User ID of `target` that `issuer` certified.
    pub userid: String,
    pub created: SystemTime,
    pub kind: EdgeKind,
    pub hash: HashAlgorithm,
}

/// The verdict on one User ID binding of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserIdTrust {
    pub userid: String,
    pub email: Option<String>,
    /// From the e-mail address, or the User ID itself if it is a bare domain.
    pub domain: Option<String>,
    /// The binding is authenticated (false for a refused key).
    pub authenticated: bool,
    /// The binding would be authenticated if the key were not refused (equal
    /// to `authenticated` for keys that are not refused).
    pub authenticated_if_not_refused: bool,
    /// Length of the shortest authenticating path (0 for a root's own).
    pub depth: Option<usize>,
    /// The shortest path from a root, first certification first.
    pub path: Vec<PathStep>,
    /// Why the binding itself is unusable (revoked, expired, ...), if it is.
    pub binding_problem: Option<String>,
}

/// A certification of this key that does not count, by a known issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedCertification {
    pub issuer: Fingerprint,
    pub userid: String,
    pub created: Option<SystemTime>,
    pub reason: RejectReason,
}

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTrust {
    pub fingerprint: Fingerprint,
    pub status: KeyStatus,
    pub userids: Vec<UserIdTrust>,
    /// Whether its certifications extend trust (introducer at the reference
    /// time, within the local depth).
    pub introducer: bool,
    /// Certifications by known issuers cut by the flooding limits.
    pub certifications_cut: usize,
    pub rejected: Vec<RejectedCertification>,
}

/// The verdicts on every key of the keyring.
#[derive(Clone, Debug)]
pub struct TrustReport {
    pub(crate) keys: Vec<KeyTrust>,
    pub(crate) index: HashMap<Fingerprint, usize>,
    /// Roots named in the settings but absent from the keyring.
    pub missing_roots: Vec<Fingerprint>,
    pub stats: EdgeStats,
    pub reference_time: SystemTime,
    pub depth: usize,
}

impl TrustReport {
    pub fn key(&self, fpr: &Fingerprint) -> Option<&KeyTrust> {
        self.index.get(fpr).map(|&i| &self.keys[i])
    }

    /// Every key, in keyring order.
    pub fn keys(&self) -> impl Iterator<Item = &KeyTrust> {
        self.keys.iter()
    }

    /// Keys matching a fingerprint or Key ID (hex, spaces ignored), an e-mail
    /// address, or a domain (of any User ID, case-insensitive).
    pub fn find(&self, query: &str) -> Vec<&KeyTrust> {
        let hex: String = query
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>();
        let hex = hex.trim_start_matches("0x").to_ascii_uppercase();
        let q = query.trim().to_ascii_lowercase();
        self.keys
            .iter()
            .filter(|k| {
                let f = k.fingerprint.to_hex();
                (hex.len() >= 16 && hex.chars().all(|c| c.is_ascii_hexdigit()) && f.ends_with(&hex))
                    || k.userids.iter().any(|u| {
                        u.email.as_deref() == Some(q.as_str())
                            || u.domain.as_deref() == Some(q.as_str())
                    })
            })
            .collect()
    }
}
