//! A test double for acceptance: a `TrustView` from explicit judgements over
//! a set of certificates (the controller uses `wotgate::statement::WotView`).
//! Shared by the statement tests and `bench_plan`; not part of the library.

use std::collections::HashMap;

use sequoia_openpgp::{Cert, Fingerprint, KeyHandle, KeyID};
use wotgate::statement::{CertLookup, SignerTrust, TrustView};

/// Certificates indexed by the Key ID of every key, and a judgement per
/// signer (untrusted unless set).
#[derive(Default)]
pub struct StaticTrust {
    certs: Vec<Cert>,
    by_key: HashMap<KeyID, Vec<usize>>,
    trust: HashMap<Fingerprint, SignerTrust>,
}

impl StaticTrust {
    /// A view over `certs` in which every signer is untrusted.
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

    /// Sets the judgement of the signer `fpr`.
    pub fn set(&mut self, fpr: Fingerprint, trust: SignerTrust) {
        self.trust.insert(fpr, trust);
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
