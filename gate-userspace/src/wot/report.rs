//! The result of a trust computation: a verdict per key and per User ID, the
//! path that authenticates each binding, and the reason when there is none.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use sequoia_openpgp::types::HashAlgorithm;
use sequoia_openpgp::Fingerprint;

use super::edges::{EdgeKind, EdgeStats, RejectReason};
use super::evaluate::{engine_depth, engine_time, Engine, Lazy};

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

/// The verdicts on every key of the keyring (computed on demand when it
/// comes from [`super::evaluate_lazy`]; the answers are the same).
#[derive(Clone, Debug)]
pub struct TrustReport {
    keys: Vec<OnceLock<KeyTrust>>,
    /// The keyring's index by fingerprint (shared with it).
    index: Arc<HashMap<Fingerprint, usize>>,
    /// Per key: trusted (root or within the depth, not refused).
    trusted: Vec<bool>,
    lazy: Option<Arc<Mutex<Lazy>>>,
    /// Roots named in the settings but absent from the keyring.
    pub missing_roots: Vec<Fingerprint>,
    /// What the computation verified; for a lazy report, up to the end of
    /// the deciding search (explanations asked for later verify more).
    pub stats: EdgeStats,
    pub reference_time: SystemTime,
    pub depth: usize,
}

impl TrustReport {
    pub(super) fn new(
        keys: Vec<OnceLock<KeyTrust>>,
        index: Arc<HashMap<Fingerprint, usize>>,
        engine: &Engine,
        missing_roots: Vec<Fingerprint>,
        lazy: Option<Arc<Mutex<Lazy>>>,
    ) -> TrustReport {
        let g = &engine.graph;
        TrustReport {
            keys,
            index,
            trusted: engine.trusted_all(),
            lazy,
            missing_roots,
            stats: g.stats.clone(),
            reference_time: engine_time(engine),
            depth: engine_depth(engine),
        }
    }

    pub(super) fn with_lazy(self, lazy: Arc<Mutex<Lazy>>) -> TrustReport {
        TrustReport {
            lazy: Some(lazy),
            ..self
        }
    }

    /// The lazy computation behind the report, if it is one.
    pub(super) fn lazy(&self) -> Option<Arc<Mutex<Lazy>>> {
        self.lazy.clone()
    }

    fn at(&self, i: usize) -> &KeyTrust {
        self.keys[i].get_or_init(|| {
            let lazy = self
                .lazy
                .as_ref()
                .expect("an eager report has every key computed");
            let mut l = lazy.lock().unwrap_or_else(|e| e.into_inner());
            let Lazy { keyring, engine } = &mut *l;
            engine.key_trust(keyring, i)
        })
    }

    pub fn key(&self, fpr: &Fingerprint) -> Option<&KeyTrust> {
        self.index.get(fpr).map(|&i| self.at(i))
    }

    /// Every key, in keyring order.
    pub fn keys(&self) -> impl Iterator<Item = &KeyTrust> {
        (0..self.keys.len()).map(|i| self.at(i))
    }

    /// The trusted keys (roots included) and the refused ones among
    /// `refused`, in keyring order: what [`TrustReport::keys`] gives
    /// filtered by status, computing no other key's explanation.
    pub fn trusted_or_refused<'a>(
        &'a self,
        refused: &'a BTreeSet<Fingerprint>,
    ) -> impl Iterator<Item = &'a KeyTrust> + 'a {
        let mut at: Vec<usize> = (0..self.keys.len()).filter(|&i| self.trusted[i]).collect();
        at.extend(refused.iter().filter_map(|f| self.index.get(f).copied()));
        at.sort_unstable();
        at.dedup();
        at.into_iter()
            .map(|i| self.at(i))
            .filter(|k| k.status.is_trusted() || k.status == KeyStatus::Refused)
    }

    /// Whether the key is trusted (root or trusted: [`KeyStatus::is_trusted`]),
    /// without computing its explanation.
    pub fn is_trusted(&self, fpr: &Fingerprint) -> bool {
        self.index.get(fpr).is_some_and(|&i| self.trusted[i])
    }

    /// How many keys are trusted (roots included), without explanations.
    pub fn trusted_count(&self) -> usize {
        self.trusted.iter().filter(|t| **t).count()
    }

    /// How many keys the report covers.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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
        self.keys()
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
