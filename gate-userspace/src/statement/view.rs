//! What acceptance needs from the web of trust: per signer, trusted (depth and
//! authenticated domains), refused, or untrusted; and certificates by issuer.

use std::collections::HashMap;

use openpgp::{cert::Cert, Fingerprint, KeyHandle, KeyID};
use sequoia_openpgp as openpgp;

pub use super::signed::CertLookup;

/// The web of trust's judgement of one signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerTrust {
    /// Trusted at `depth` (0: a root) for the domains of its authenticated
    /// User IDs.
    Trusted {
        depth: usize,
        domains: Vec<String>,
    },
    /// Refused by the operator; `would_be_domains` are the domains it would
    /// be authenticated for if it were not refused (its statements can only
    /// deny prefixes for those).
    Refused {
        would_be_domains: Vec<String>,
    },
    Untrusted {
        reason: String,
    },
}

/// The web of trust as acceptance sees it.
pub trait TrustView: CertLookup {
    fn signer(&self, fpr: &Fingerprint) -> SignerTrust;
}

/// A trust view from explicit judgements over a set of certificates (the
/// test double; the controller uses `WotView`).
#[derive(Default)]
pub struct StaticTrust {
    certs: Vec<Cert>,
    by_key: HashMap<KeyID, Vec<usize>>,
    trust: HashMap<Fingerprint, SignerTrust>,
}

impl StaticTrust {
    pub fn new(certs: Vec<Cert>) -> StaticTrust {
        let mut by_key: HashMap<KeyID, Vec<usize>> = HashMap::new();
        for (i, c) in certs.iter().enumerate() {
            for k in c.keys() {
                by_key.entry(k.key().keyid()).or_default().push(i);
            }
        }
        StaticTrust {
            certs,
            by_key,
            trust: HashMap::new(),
        }
    }

    pub fn set(&mut self, fpr: Fingerprint, trust: SignerTrust) {
        self.trust.insert(fpr, trust);
    }

    pub fn certs(&self) -> &[Cert] {
        &self.certs
    }

    pub fn cert(&self, fpr: &Fingerprint) -> Option<&Cert> {
        self.certs.iter().find(|c| &c.fingerprint() == fpr)
    }
}

impl CertLookup for StaticTrust {
    fn certs_for(&self, issuer: &KeyHandle) -> Vec<&Cert> {
        let key = KeyID::from(issuer);
        self.by_key
            .get(&key)
            .map(|ix| ix.iter().map(|&i| &self.certs[i]).collect())
            .unwrap_or_default()
    }
}

impl TrustView for StaticTrust {
    fn signer(&self, fpr: &Fingerprint) -> SignerTrust {
        self.trust
            .get(fpr)
            .cloned()
            .unwrap_or_else(|| SignerTrust::Untrusted {
                reason: "the web of trust has no path from a root to this key".into(),
            })
    }
}
