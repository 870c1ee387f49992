//! What `trust list` and `trust explain` share: evaluating the web of trust
//! from the trust flags, and rendering a key's verdict as text or JSON.

use anyhow::{bail, Result};
use sequoia_openpgp::policy::StandardPolicy;
use serde_json::{json, Value};
use wotgate::model::config::{Recipient, RecipientWeb};
use wotgate::model::time::format_time;
use wotgate::source::cache::Cache;
use wotgate::source::wellknown::SourceKind;
use wotgate::wot::{self, EdgeKind, KeyStatus, KeyTrust, Keyring, TrustReport};

use crate::args::{RecipientArg, TrustArgs};

/// The web of trust a report was evaluated with, for `--recipient`.
pub struct WebUsed {
    /// The recipient's address, lowercased.
    recipient: String,
    /// The per-recipient web; `None`: the system's.
    web: Option<RecipientWeb>,
}

impl WebUsed {
    /// `web: alice@example.org (FILE, replace)`, or the system default.
    pub fn text(&self) -> String {
        match &self.web {
            Some(w) => format!("web: {} ({}, {})", w.recipient, w.file.display(), w.combine),
            None => format!(
                "web: system default (no per-recipient file for {})",
                self.recipient
            ),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "recipient": self.recipient,
            "system_default": self.web.is_none(),
            "name": self.web.as_ref().map(|w| w.recipient.name()),
            "file": self.web.as_ref().map(|w| w.file.display().to_string()),
            "combine": self.web.as_ref().map(|w| w.combine.as_str()),
        })
    }
}

/// Loads the keyrings and runs the engine, with `recipient`'s web of trust
/// when one is given; problems go to standard error.
pub fn evaluate(
    args: &TrustArgs,
    recipient: &RecipientArg,
) -> Result<(TrustReport, Option<WebUsed>)> {
    let mut trust = args.resolve()?;
    let web = match (&recipient.recipient, &trust.config) {
        (None, _) => None,
        (Some(_), None) => {
            bail!("--recipient needs --config FILE (the per-recipient webs are configured there)")
        }
        (Some(addr), Some(config)) => {
            let Ok(Recipient::Address(address)) = Recipient::parse(addr) else {
                bail!("--recipient {addr:?}: not an e-mail address");
            };
            let web = config.web_for(&address).cloned();
            if let Some(w) = &web {
                trust.settings = w.trust_at(args.at);
            }
            Some(WebUsed {
                recipient: address,
                web,
            })
        }
    };
    let spinner = crate::progress::Spinner::start("reading keyrings");
    // With --config, also the keys the daemon fetched (its cache in the
    // state directory), so the answer matches what the daemon judged.
    let mut fetched = Vec::new();
    let mut cache_problems = Vec::new();
    if let Some(config) = &trust.config {
        let cache = Cache::new(
            &config.state_directory,
            config.sources.fetch.max_response_bytes,
        );
        for kind in [SourceKind::Wkd, SourceKind::Certified] {
            let (found, problems) = cache.all(kind);
            fetched.extend(found);
            cache_problems.extend(problems);
        }
    }
    let (ring, problems) = Keyring::load_with(&trust.keyrings, fetched);
    spinner.set(&format!(
        "evaluating the web of trust ({} certificates)",
        ring.len()
    ));
    let report = wot::evaluate(&ring, &trust.settings, &StandardPolicy::new());
    drop(spinner);
    for p in &problems {
        errln!("wotgate: warning: {p}");
    }
    for p in &cache_problems {
        errln!("wotgate: warning: {p}");
    }
    if ring.is_empty() {
        bail!("no certificate could be loaded from {:?}", trust.keyrings);
    }
    for r in &report.missing_roots {
        errln!("wotgate: warning: root {r} is not in the keyring");
    }
    if report.stats.cut_by_limits > 0 {
        errln!(
            "wotgate: warning: {} certification(s) cut by flooding limits (see per-key counts)",
            report.stats.cut_by_limits
        );
    }
    Ok((report, web))
}

pub fn status_text(s: &KeyStatus) -> String {
    match s {
        KeyStatus::Root => "root".into(),
        KeyStatus::Trusted { depth } => format!("trusted (depth {depth})"),
        KeyStatus::Refused => "refused".into(),
        KeyStatus::Untrusted { reason } => format!("untrusted: {reason}"),
    }
}

pub fn kind_text(k: &EdgeKind) -> String {
    match k {
        EdgeKind::Certification => "certification".into(),
        EdgeKind::TrustSignature { level, amount } => {
            format!("trust signature (level {level}, amount {amount})")
        }
    }
}

pub fn key_json(k: &KeyTrust) -> Value {
    let (status, depth, reason) = match &k.status {
        KeyStatus::Root => ("root", Some(0), None),
        KeyStatus::Trusted { depth } => ("trusted", Some(*depth), None),
        KeyStatus::Refused => ("refused", None, None),
        KeyStatus::Untrusted { reason } => ("untrusted", None, Some(reason.to_string())),
    };
    json!({
        "fingerprint": k.fingerprint.to_hex(),
        "status": status,
        "depth": depth,
        "reason": reason,
        "introducer": k.introducer,
        "certifications_cut": k.certifications_cut,
        "userids": k.userids.iter().map(|u| json!({
            "userid": u.userid,
            "email": u.email,
            "domain": u.domain,
            "authenticated": u.authenticated,
            "authenticated_if_not_refused": u.authenticated_if_not_refused,
            "depth": u.depth,
            "binding_problem": u.binding_problem,
            "path": u.path.iter().map(|s| json!({
                "issuer": s.issuer.to_hex(),
                "target": s.target.to_hex(),
                "userid": s.userid,
                "created": format_time(s.created),
                "kind": kind_text(&s.kind),
                "hash": s.hash.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "rejected_certifications": k.rejected.iter().map(|r| json!({
            "issuer": r.issuer.to_hex(),
            "userid": r.userid,
            "created": r.created.map(format_time),
            "reason": r.reason.to_string(),
        })).collect::<Vec<_>>(),
    })
}
