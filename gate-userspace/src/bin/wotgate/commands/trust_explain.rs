//! `wotgate trust explain QUERY`: the shortest path from a root to a key,
//! e-mail address or domain, or why there is none.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use sequoia_openpgp::Fingerprint;
use wotgate::model::time::format_time;
use wotgate::wot::{KeyStatus, KeyTrust, TrustReport};

use super::trust_report::{evaluate, key_json, kind_text, status_text, WebUsed};
use crate::args::{RecipientArg, TrustArgs};
use crate::exit;

/// The shortest path(s) from a root to a key, e-mail address or domain, or
/// why there is none. Exits 3 when no matching key is trusted.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate trust explain --keyring keys.pgp --root 0123...CDEF mx.example.org
  wotgate trust explain --config /etc/wotgate/wotgate.toml --dot postmaster@example.net | dot -Tsvg
  wotgate trust explain --config /etc/wotgate/wotgate.toml --recipient alice@example.org mx.example.net")]
pub struct Explain {
    /// Fingerprint or Key ID, e-mail address, or domain.
    query: String,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    recipient: RecipientArg,
    /// Print JSON.
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print a Graphviz graph of the paths.
    #[arg(long)]
    dot: bool,
}

impl Explain {
    pub fn run(self) -> Result<ExitCode> {
        let (report, web) = evaluate(&self.trust, &self.recipient)?;
        let found = report.find(&self.query);
        if found.is_empty() {
            bail!(
                "no key in the keyring matches {:?} (fingerprint, Key ID, e-mail or domain)",
                self.query
            );
        }
        let ok = found.iter().any(|k| k.status.is_trusted());
        let code = exit::code(ok);
        if self.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &found
                        .iter()
                        .map(|k| {
                            let mut v = key_json(k);
                            v["web"] = web.as_ref().map(WebUsed::json).into();
                            v
                        })
                        .collect::<Vec<_>>()
                )?
            );
        } else if self.dot {
            out!("{}", dot(&report, &found, web.as_ref()));
        } else {
            if let Some(w) = &web {
                outln!("{}", w.text());
            }
            for k in &found {
                explain_text(k)?;
            }
        }
        Ok(code)
    }
}

fn explain_text(k: &KeyTrust) -> Result<()> {
    outln!("{}: {}", k.fingerprint.to_hex(), status_text(&k.status));
    for u in &k.userids {
        let verdict = match (
            u.authenticated,
            u.authenticated_if_not_refused,
            &u.binding_problem,
        ) {
            (_, _, Some(p)) => format!("not usable ({p})"),
            (true, _, _) => format!("authenticated at depth {}", u.depth.unwrap_or(0)),
            (false, true, _) => format!(
                "would be authenticated at depth {} (key refused)",
                u.depth.unwrap_or(0)
            ),
            _ => "not authenticated".into(),
        };
        outln!("  {:?}: {verdict}", u.userid);
        for (i, s) in u.path.iter().enumerate() {
            outln!(
                "    {}. {} certified {} {:?} on {} ({}, {})",
                i + 1,
                s.issuer.to_hex(),
                s.target.to_hex(),
                s.userid,
                format_time(s.created),
                kind_text(&s.kind),
                s.hash
            );
        }
    }
    for r in &k.rejected {
        outln!(
            "  not counted: certification of {:?} by {} ({}): {}",
            r.userid,
            r.issuer.to_hex(),
            r.created.map(format_time).unwrap_or_default(),
            r.reason
        );
    }
    if k.certifications_cut > 0 {
        outln!(
            "  {} certification(s) cut by flooding limits",
            k.certifications_cut
        );
    }
    Ok(())
}

fn dot(report: &TrustReport, found: &[&KeyTrust], web: Option<&WebUsed>) -> String {
    let label = |f: &Fingerprint| -> String {
        let k = report.key(f);
        let uid = k
            .and_then(|k| k.userids.first())
            .map(|u| u.userid.replace('"', "'"))
            .unwrap_or_default();
        let status = k.map(|k| status_text(&k.status)).unwrap_or_default();
        format!("{}\\n{}\\n{}", uid, f.to_hex(), status.replace('"', "'"))
    };
    let mut nodes = BTreeSet::new();
    let mut edges = BTreeSet::new();
    for k in found {
        nodes.insert(k.fingerprint.clone());
        for u in &k.userids {
            for s in &u.path {
                nodes.insert(s.issuer.clone());
                nodes.insert(s.target.clone());
                edges.insert(format!(
                    "  \"{}\" -> \"{}\" [label=\"{}\\n{}\"];\n",
                    s.issuer.to_hex(),
                    s.target.to_hex(),
                    kind_text(&s.kind),
                    format_time(s.created)
                ));
            }
        }
    }
    let mut out = String::from("digraph trust {\n");
    if let Some(w) = web {
        out.push_str(&format!("  // {}\n", w.text()));
    }
    out.push_str("  rankdir=LR;\n  node [shape=box];\n");
    for n in &nodes {
        let style = match report.key(n).map(|k| &k.status) {
            Some(KeyStatus::Root) => ", style=bold",
            Some(KeyStatus::Trusted { .. }) => "",
            _ => ", style=dashed",
        };
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\"{style}];\n",
            n.to_hex(),
            label(n)
        ));
    }
    for e in edges {
        out.push_str(&e);
    }
    out.push_str("}\n");
    out
}
