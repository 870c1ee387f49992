//! What acceptance needs from the web of trust: per signer, trusted (depth and
//! authenticated domains), refused, or untrusted; and certificates by issuer.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use openpgp::cert::amalgamation::ValidAmalgamation;
use openpgp::{cert::Cert, policy::Policy, Fingerprint, KeyHandle, KeyID};
use sequoia_openpgp as openpgp;

use super::body::check_domain;
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

/// The domain a User ID speaks for: the domain of its e-mail address
/// (`…@domain`), or the User ID itself when it is a domain name.
pub fn userid_domain(uid: &openpgp::packet::UserID) -> Option<String> {
    if let Ok(Some(email)) = uid.email() {
        let d = email.rsplit_once('@')?.1.to_ascii_lowercase();
        return check_domain(&d).is_ok().then_some(d);
    }
    let v = std::str::from_utf8(uid.value())
        .ok()?
        .trim()
        .to_ascii_lowercase();
    check_domain(&v).is_ok().then_some(v)
}

/// The domains of a certificate's User IDs that are self-signed and valid
/// under `policy` at `at` (sorted, deduplicated). Which of them the web of
/// trust authenticates is the engine's business; this is what a root, which
/// is trusted by definition, speaks for.
pub fn self_signed_domains(cert: &Cert, policy: &dyn Policy, at: SystemTime) -> Vec<String> {
    let Ok(vc) = cert.with_policy(policy, at) else {
        return Vec::new();
    };
    let set: BTreeSet<String> = vc
        .userids()
        .filter(|u| {
            !matches!(
                u.revocation_status(),
                openpgp::types::RevocationStatus::Revoked(_)
            )
        })
        .filter_map(|u| userid_domain(u.userid()))
        .collect();
    set.into_iter().collect()
}

/// A trust view from explicit judgements over a set of certificates: the
/// test double, the roots-only fallback, and the form an adapter from the
/// web-of-trust engine fills in.
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

    /// Interim view until the web-of-trust engine is wired: `roots` are
    /// trusted at depth 0 for their self-signed domains, `refuse` are refused,
    /// every other key is untrusted.
    pub fn roots_only(
        certs: Vec<Cert>,
        roots: &[Fingerprint],
        refuse: &[Fingerprint],
        policy: &dyn Policy,
        at: SystemTime,
    ) -> StaticTrust {
        let mut v = StaticTrust::new(certs);
        let judged: Vec<(Fingerprint, SignerTrust)> = v
            .certs
            .iter()
            .filter_map(|c| {
                let f = c.fingerprint();
                let domains = self_signed_domains(c, policy, at);
                if refuse.contains(&f) {
                    Some((
                        f,
                        SignerTrust::Refused {
                            would_be_domains: domains,
                        },
                    ))
                } else if roots.contains(&f) {
                    Some((f, SignerTrust::Trusted { depth: 0, domains }))
                } else {
                    None
                }
            })
            .collect();
        for (f, t) in judged {
            v.set(f, t);
        }
        v
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
