//! What acceptance needs from the web of trust: per signer, trusted (depth and
//! authenticated domains), refused, or untrusted; and certificates by issuer.

use sequoia_openpgp::Fingerprint;

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
