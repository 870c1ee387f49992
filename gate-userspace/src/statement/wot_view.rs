//! The adapter from the web-of-trust engine (`crate::wot`) to acceptance's
//! `TrustView`: a key's verdict and the domains of its authenticated User IDs.

use std::collections::BTreeSet;
use std::sync::Arc;

use sequoia_openpgp::{policy::Policy, Cert, Fingerprint, KeyHandle};

use super::view::{CertLookup, SignerTrust, TrustView};
use crate::wot::{self, KeyStatus, Keyring, TrustReport, TrustSettings, UserIdTrust};

/// A keyring and the engine's report on it (explanations computed when a
/// statement's signer is looked at).
pub struct WotView {
    pub keyring: Arc<Keyring>,
    pub report: TrustReport,
}

impl WotView {
    /// Runs the web-of-trust engine over `keyring`; the warnings say which
    /// roots are missing.
    pub fn evaluate(
        keyring: Keyring,
        settings: &TrustSettings,
        policy: &dyn Policy,
    ) -> (WotView, Vec<String>) {
        Self::evaluate_cached(keyring, settings, policy, &mut wot::VerifyCache::new())
    }

    /// Like [`WotView::evaluate`], sharing a cache of verifications (the
    /// per-recipient webs verify nothing twice).
    pub fn evaluate_cached(
        keyring: Keyring,
        settings: &TrustSettings,
        policy: &dyn Policy,
        cache: &mut wot::VerifyCache,
    ) -> (WotView, Vec<String>) {
        let keyring = Arc::new(keyring);
        let report = wot::evaluate_lazy(keyring.clone(), settings, policy, cache);
        Self::from_report(keyring, report)
    }

    /// The view of a report already computed over `keyring` (e.g. by a
    /// [`wot::TrustEngine`]); the warnings say which roots are missing.
    pub fn from_report(keyring: Arc<Keyring>, report: TrustReport) -> (WotView, Vec<String>) {
        let warnings = report
            .missing_roots
            .iter()
            .map(|r| format!("root {r} is not in any keyring"))
            .collect();
        (WotView { keyring, report }, warnings)
    }
}

fn domains<'a>(uids: impl Iterator<Item = &'a UserIdTrust>) -> Vec<String> {
    let set: BTreeSet<String> = uids
        .filter_map(|u| u.domain.clone())
        .map(|d| d.to_ascii_lowercase())
        .collect();
    set.into_iter().collect()
}

impl CertLookup for WotView {
    fn certs_for(&self, issuer: &KeyHandle) -> Vec<&Cert> {
        self.keyring.lookup(issuer)
    }
}

impl TrustView for WotView {
    fn signer(&self, fpr: &Fingerprint) -> SignerTrust {
        let Some(k) = self.report.key(fpr) else {
            return SignerTrust::Untrusted {
                reason: "not in the keyring".into(),
            };
        };
        let authenticated = || domains(k.userids.iter().filter(|u| u.authenticated));
        match &k.status {
            KeyStatus::Root => SignerTrust::Trusted {
                depth: 0,
                domains: authenticated(),
            },
            KeyStatus::Trusted { depth } => SignerTrust::Trusted {
                depth: *depth,
                domains: authenticated(),
            },
            KeyStatus::Refused => SignerTrust::Refused {
                would_be_domains: domains(
                    k.userids.iter().filter(|u| u.authenticated_if_not_refused),
                ),
            },
            KeyStatus::Untrusted { reason } => SignerTrust::Untrusted {
                reason: reason.to_string(),
            },
        }
    }
}
