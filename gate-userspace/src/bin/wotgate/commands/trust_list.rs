//! `wotgate trust list`: every key in the keyrings with its verdict, depth
//! and authenticated User IDs.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use wotgate::model::time::format_time;

use super::trust_report::{evaluate, key_json, status_text, WebUsed};
use crate::args::{RecipientArg, TrustArgs};

/// Every key with its verdict, depth and authenticated User IDs.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate trust list --keyring /etc/wotgate/keys.pgp --root 0123...CDEF
  wotgate trust list --config /etc/wotgate/wotgate.toml --json
  wotgate trust list --config /etc/wotgate/wotgate.toml --recipient alice@example.org")]
pub struct List {
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    recipient: RecipientArg,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl List {
    pub fn run(self) -> Result<ExitCode> {
        let (report, web) = evaluate(&self.trust, &self.recipient)?;
        if self.json {
            let v = json!({
                "web": web.as_ref().map(WebUsed::json),
                "reference_time": format_time(report.reference_time),
                "depth": report.depth,
                "certifications_cut": report.stats.cut_by_limits,
                "bad_signatures": report.stats.bad_signatures,
                "unknown_issuer_certifications_skipped": report.stats.unknown_issuer,
                "keys": report.keys().map(key_json).collect::<Vec<_>>(),
            });
            outln!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(w) = &web {
            outln!("{}", w.text());
        }
        for k in report.keys() {
            outln!("{}  {}", k.fingerprint.to_hex(), status_text(&k.status));
            for u in &k.userids {
                let mark = if u.authenticated {
                    "[authenticated]"
                } else if u.authenticated_if_not_refused {
                    "[refused]"
                } else {
                    "[           ]"
                };
                outln!("    {mark} {}", u.userid);
            }
            if k.certifications_cut > 0 {
                outln!(
                    "    ({} certification(s) cut by flooding limits)",
                    k.certifications_cut
                );
            }
        }
        let trusted = report.keys().filter(|k| k.status.is_trusted()).count();
        outln!(
            "{} keys, {trusted} trusted at {} (depth {}); {} bad signature(s), {} certification(s) by unknown keys skipped, {} cut by limits",
            report.keys().count(),
            format_time(report.reference_time),
            report.depth,
            report.stats.bad_signatures,
            report.stats.unknown_issuer,
            report.stats.cut_by_limits
        );
        Ok(ExitCode::SUCCESS)
    }
}
