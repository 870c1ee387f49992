//! What one certificate gives the graph at one reference time under one
//! policy, whatever else the keyring holds: its validity and its User IDs',
//! and what each of its certifications gives before its issuer is known.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::policy::{HashAlgoSecurity, Policy};
use sequoia_openpgp::regex::RegexSet;
use sequoia_openpgp::types::{HashAlgorithm, RevocationStatus};
use sequoia_openpgp::Fingerprint;

use super::edges::EdgeKind;
use super::keyring::Certification;
use super::part::KeptPart;
use super::window::Window;

/// The validity of a certificate at the reference time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    Valid,
    Revoked,
    Expired,
    /// Not valid under the policy (e.g. no acceptable self-signature).
    Invalid(String),
}

/// The validity of one User ID binding at the reference time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UidState {
    Valid,
    Revoked,
    /// No live self-signature acceptable to the policy (expired, weak, none).
    Invalid(String),
}

#[derive(Clone, Debug)]
pub struct Uid {
    pub value: String,
    pub state: UidState,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub fingerprint: Fingerprint,
    pub state: NodeState,
    pub userids: Vec<Uid>,
    /// The primary key's creation time.
    pub(super) created: SystemTime,
}

/// What a certification gives the graph that depends on neither its
/// issuer nor the rest of the keyring (only on it, the policy and the time).
#[derive(Clone, Debug)]
pub(super) struct Info {
    pub(super) weak: Option<HashAlgorithm>,
    pub(super) alive: bool,
    pub(super) kind: EdgeKind,
    pub(super) scope: Option<Arc<RegexSet>>,
    pub(super) hash: HashAlgorithm,
}

/// What one certificate gives the graph at one reference time under one
/// policy, whatever else the keyring holds: its node and (filled when first
/// needed) its certifications' [`Info`], by position as parsed. Kept by
/// [`super::TrustEngine`] for certificates whose bytes do not change, and
/// used at any reference time its [`Window`] holds.
#[derive(Debug)]
pub(crate) struct CertDerived {
    pub(super) node: Arc<Node>,
    pub(super) infos: Box<[OnceLock<Option<Info>>]>,
    pub(super) window: Window,
    /// What it gives the graph as a target (made when first needed).
    pub(super) part: OnceLock<KeptPart>,
}

impl CertDerived {
    /// Whether it is what the certificate gives at reference time `t`.
    pub(crate) fn holds(&self, t: SystemTime) -> bool {
        self.window.holds(t)
    }
}

/// Judges certificate `cert` at `t`.
pub(super) fn node_of(cert: &Cert, policy: &dyn Policy, t: SystemTime) -> Node {
    let state = match cert.with_policy(policy, t) {
        Err(e) => NodeState::Invalid(format!("{e}")),
        Ok(vc) => {
            if let RevocationStatus::Revoked(_) = vc.revocation_status() {
                NodeState::Revoked
            } else if vc.alive().is_err() {
                NodeState::Expired
            } else {
                NodeState::Valid
            }
        }
    };
    let userids = cert
        .userids()
        .map(|ua| {
            let value = String::from_utf8_lossy(ua.userid().value()).into_owned();
            let state = match ua.clone().with_policy(policy, t) {
                Err(e) => UidState::Invalid(format!("{e}")),
                Ok(va) => match va.revocation_status() {
                    RevocationStatus::Revoked(_) => UidState::Revoked,
                    _ => UidState::Valid,
                },
            };
            Uid { value, state }
        })
        .collect();
    Node {
        fingerprint: cert.fingerprint(),
        state,
        userids,
        created: cert.primary_key().key().creation_time(),
    }
}

/// Certification `c`'s packet parsed again to judge what needs no issuer:
/// policy, expiry, trust signature.
pub(super) fn info_of(c: &Certification, policy: &dyn Policy, t: SystemTime) -> Option<Info> {
    let sig = c.signature()?;
    let weak = policy
        .signature(&sig, HashAlgoSecurity::CollisionResistance)
        .is_err()
        .then(|| sig.hash_algo());
    let kind = match sig.trust_signature() {
        Some((level, amount)) => EdgeKind::TrustSignature { level, amount },
        None => EdgeKind::Certification,
    };
    let scope = if sig.regular_expressions().next().is_some() {
        // An unparsable expression matches nothing (sequoia's rule).
        RegexSet::from_signature(&sig).ok().map(Arc::new)
    } else {
        None
    };
    Some(Info {
        weak,
        alive: sig.signature_alive(t, std::time::Duration::ZERO).is_ok(),
        kind,
        scope,
        hash: sig.hash_algo(),
    })
}
