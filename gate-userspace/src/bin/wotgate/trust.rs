//! `wotgate trust`: which keys the web of trust vouches for (`list`) and why a
//! key, e-mail address or domain is or is not trusted (`explain`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::Fingerprint;
use serde_json::{json, Value};
use wotgate::wot::time::{format_time, parse_time};
use wotgate::wot::{
    self, EdgeKind, IntroducerMode, KeyStatus, KeyTrust, Keyring, Limits, TrustReport,
    TrustSettings,
};

/// Inspect the web of trust.
#[derive(Subcommand)]
pub enum Trust {
    /// Every key with its verdict, depth and authenticated User IDs.
    List(List),
    /// The shortest path(s) from a root to a key, e-mail address or domain,
    /// or why there is none. Exits 1 when no matching key is trusted.
    Explain(Explain),
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Certifications,
    TrustSignatures,
}

#[derive(Args)]
struct Common {
    /// Keyring files or directories (binary or ASCII-armoured).
    #[arg(long, required = true, num_args = 1..)]
    keyring: Vec<PathBuf>,
    /// Fingerprint of a trust root.
    #[arg(long, required = true, num_args = 1..)]
    root: Vec<String>,
    /// Longest chain of certifications from a root.
    #[arg(long, default_value_t = wot::DEFAULT_DEPTH)]
    depth: usize,
    #[arg(long, value_enum, default_value = "certifications")]
    mode: Mode,
    /// A key never trusted itself (its certifications still count).
    #[arg(long)]
    refuse: Vec<String>,
    /// A key whose certifications do not count.
    #[arg(long)]
    ignore_certifications_by: Vec<String>,
    /// Reference time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or @UNIX); default now.
    #[arg(long)]
    at: Option<String>,
    /// Flooding limit: certifications by known keys considered per certificate.
    #[arg(long, default_value_t = Limits::default().max_certifications_per_cert)]
    max_certifications: usize,
    /// Flooding limit: bytes of such certifications considered per certificate.
    #[arg(long, default_value_t = Limits::default().max_certification_bytes_per_cert)]
    max_certification_bytes: usize,
}

#[derive(Args)]
pub struct List {
    #[command(flatten)]
    common: Common,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct Explain {
    /// Fingerprint or Key ID, e-mail address, or domain.
    query: String,
    #[command(flatten)]
    common: Common,
    /// Print JSON.
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print a Graphviz graph of the paths.
    #[arg(long)]
    dot: bool,
}

fn fpr(s: &str, what: &str) -> Result<Fingerprint> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    Fingerprint::from_hex(&clean).with_context(|| format!("{what} {s:?} is not a fingerprint"))
}

impl Common {
    fn evaluate(&self) -> Result<TrustReport> {
        let at = match &self.at {
            Some(s) => parse_time(s).context("--at")?,
            None => std::time::SystemTime::now(),
        };
        let set = |v: &[String], what| {
            v.iter()
                .map(|s| fpr(s, what))
                .collect::<Result<BTreeSet<_>>>()
        };
        let mut settings = TrustSettings::new(set(&self.root, "--root")?, at);
        settings.depth = self.depth;
        settings.mode = match self.mode {
            Mode::Certifications => IntroducerMode::Certifications,
            Mode::TrustSignatures => IntroducerMode::TrustSignatures,
        };
        settings.refuse = set(&self.refuse, "--refuse")?;
        settings.ignore_certifications_by =
            set(&self.ignore_certifications_by, "--ignore-certifications-by")?;
        settings.limits = Limits {
            max_certifications_per_cert: self.max_certifications,
            max_certification_bytes_per_cert: self.max_certification_bytes,
        };
        let (ring, problems) = Keyring::load(&self.keyring);
        for p in &problems {
            eprintln!("wotgate: warning: {p}");
        }
        if ring.is_empty() {
            bail!("no certificate could be loaded from {:?}", self.keyring);
        }
        let report = wot::evaluate(&ring, &settings, &StandardPolicy::new());
        for r in &report.missing_roots {
            eprintln!("wotgate: warning: root {r} is not in the keyring");
        }
        if report.stats.cut_by_limits > 0 {
            eprintln!(
                "wotgate: warning: {} certification(s) cut by flooding limits (see per-key counts)",
                report.stats.cut_by_limits
            );
        }
        Ok(report)
    }
}

fn status_text(s: &KeyStatus) -> String {
    match s {
        KeyStatus::Root => "root".into(),
        KeyStatus::Trusted { depth } => format!("trusted (depth {depth})"),
        KeyStatus::Refused => "refused".into(),
        KeyStatus::Untrusted { reason } => format!("untrusted: {reason}"),
    }
}

fn kind_text(k: &EdgeKind) -> String {
    match k {
        EdgeKind::Certification => "certification".into(),
        EdgeKind::TrustSignature { level, amount } => {
            format!("trust signature (level {level}, amount {amount})")
        }
    }
}

fn key_json(k: &KeyTrust) -> Value {
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

impl Trust {
    pub fn run(self, _pin_dir: &std::path::Path) -> Result<ExitCode> {
        match self {
            Trust::List(c) => c.run(),
            Trust::Explain(c) => c.run(),
        }
    }
}

impl List {
    fn run(self) -> Result<ExitCode> {
        let report = self.common.evaluate()?;
        if self.json {
            let v = json!({
                "reference_time": format_time(report.reference_time),
                "depth": report.depth,
                "certifications_cut": report.stats.cut_by_limits,
                "bad_signatures": report.stats.bad_signatures,
                "unknown_issuer_certifications_skipped": report.stats.unknown_issuer,
                "keys": report.keys().map(key_json).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        for k in report.keys() {
            println!("{}  {}", k.fingerprint.to_hex(), status_text(&k.status));
            for u in &k.userids {
                let mark = if u.authenticated {
                    "[authenticated]"
                } else if u.authenticated_if_not_refused {
                    "[refused]"
                } else {
                    "[           ]"
                };
                println!("    {mark} {}", u.userid);
            }
            if k.certifications_cut > 0 {
                println!(
                    "    ({} certification(s) cut by flooding limits)",
                    k.certifications_cut
                );
            }
        }
        let trusted = report.keys().filter(|k| k.status.is_trusted()).count();
        println!(
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

impl Explain {
    fn run(self) -> Result<ExitCode> {
        let report = self.common.evaluate()?;
        let found = report.find(&self.query);
        if found.is_empty() {
            bail!(
                "no key in the keyring matches {:?} (fingerprint, Key ID, e-mail or domain)",
                self.query
            );
        }
        let ok = found.iter().any(|k| k.status.is_trusted());
        let code = if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &found.iter().map(|k| key_json(k)).collect::<Vec<_>>()
                )?
            );
        } else if self.dot {
            print!("{}", dot(&report, &found));
        } else {
            for k in &found {
                explain_text(k);
            }
        }
        Ok(code)
    }
}

fn explain_text(k: &KeyTrust) {
    println!("{}: {}", k.fingerprint.to_hex(), status_text(&k.status));
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
        println!("  {:?}: {verdict}", u.userid);
        for (i, s) in u.path.iter().enumerate() {
            println!(
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
        println!(
            "  not counted: certification of {:?} by {} ({}): {}",
            r.userid,
            r.issuer.to_hex(),
            r.created.map(format_time).unwrap_or_default(),
            r.reason
        );
    }
    if k.certifications_cut > 0 {
        println!(
            "  {} certification(s) cut by flooding limits",
            k.certifications_cut
        );
    }
}

fn dot(report: &TrustReport, found: &[&KeyTrust]) -> String {
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
    let mut out = String::from("digraph trust {\n  rankdir=LR;\n  node [shape=box];\n");
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
