//! `wotgate statement verify`: judge statements exactly as the controller
//! does, explaining every check; every file named gets a verdict.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sequoia_openpgp::policy::StandardPolicy;
use wotgate::model::prefixes::Verdict;
use wotgate::source::local::read_bounded;
use wotgate::statement::{Acceptor, Rejection, Rule, SerialState, WotView};
use wotgate::wot::Keyring;

use crate::args::{RuleArgs, TrustArgs};
use crate::exit;

/// Check statements with the controller's acceptance rules and explain
/// every verdict. Exits 0 only when every statement is accepted, 3 when
/// any is rejected (unreadable files included).
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate statement verify --config /etc/wotgate/wotgate.toml example.org.asc
  wotgate statement verify --keyring keys.pgp --root 0123...CDEF --depth 1 *.asc
  wotgate statement verify --config /etc/wotgate/wotgate.toml --json *.asc | jq '.[] | select(.accepted == null)'")]
pub struct Verify {
    /// Signed statements (armoured).
    #[arg(required = true)]
    statements: Vec<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    rules: RuleArgs,
    /// Print one JSON object per file: the checks passed, and either
    /// `accepted` (the statement, signer, depth, role) or `rejected`
    /// (rule and detail).
    #[arg(long)]
    json: bool,
}

/// A rejection as `--json` shows it.
#[derive(serde::Serialize)]
struct Rejected {
    domain: Option<String>,
    signer: Option<String>,
    rule: String,
    detail: String,
}

impl From<&Rejection> for Rejected {
    fn from(r: &Rejection) -> Rejected {
        Rejected {
            domain: r.domain.clone(),
            signer: r.signer.clone(),
            rule: r.rule.to_string(),
            detail: r.detail.clone(),
        }
    }
}

/// One file's verdict as `--json` shows it.
#[derive(serde::Serialize)]
struct FileVerdict<'a> {
    file: String,
    checks: &'a [String],
    accepted: Option<&'a wotgate::statement::Accepted>,
    rejected: Option<Rejected>,
}

impl Verify {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let trust = self.trust.resolve()?;
        let (rules, state_dir) = self.rules.resolve(trust.config.as_ref())?;
        let policy = StandardPolicy::new();
        let spinner = crate::progress::Spinner::start("reading keyrings");
        let (keyring, problems) = Keyring::load(&trust.keyrings);
        spinner.set("evaluating the web of trust");
        let (view, warnings) = WotView::evaluate(keyring, &trust.settings, &policy);
        drop(spinner);
        for p in &problems {
            eprintln!("wotgate: warning: {p}");
        }
        for w in &warnings {
            eprintln!("wotgate: warning: {w}");
        }
        let state = match &state_dir {
            Some(d) => SerialState::load(d)?,
            None => SerialState::default(),
        };
        let acceptor = Acceptor {
            rules: &rules,
            trust: &view,
            policy: &policy,
            at: self.trust.at,
            state: &state,
        };
        let mut all_ok = true;
        let mut json = Vec::new();
        for path in &self.statements {
            let file = path.display().to_string();
            let bytes = match read_bounded(path, rules.max_size) {
                Ok(named) => named.bytes,
                Err(e) => {
                    all_ok = false;
                    let r = Rejection {
                        file,
                        domain: None,
                        signer: None,
                        rule: Rule::Unreadable,
                        detail: e.detail(),
                    };
                    if self.json {
                        json.push(serde_json::to_value(FileVerdict {
                            file: r.file.clone(),
                            checks: &[],
                            accepted: None,
                            rejected: Some((&r).into()),
                        })?);
                    } else {
                        outln!("{r}");
                    }
                    continue;
                }
            };
            let j = acceptor.judge(&file, &bytes);
            all_ok &= j.result.is_ok();
            if self.json {
                json.push(serde_json::to_value(FileVerdict {
                    file: j.file.clone(),
                    checks: &j.explanation,
                    accepted: j.result.as_ref().ok(),
                    rejected: j.result.as_ref().err().map(Into::into),
                })?);
                continue;
            }
            for line in &j.explanation {
                println!("{}: ok: {line}", j.file);
            }
            match &j.result {
                Ok(a) => println!(
                    "{}: {}: ACCEPTED to {} {} prefixes",
                    j.file,
                    a.statement.domain,
                    match a.role {
                        Verdict::Allow => "allow",
                        Verdict::Deny => "deny",
                    },
                    a.statement.prefixes.len()
                ),
                Err(r) => println!("{r}"),
            }
        }
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        Ok(exit::code(all_ok))
    }
}
