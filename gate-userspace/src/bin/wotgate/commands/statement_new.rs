//! `wotgate statement new`: write an unsigned statement body from flags, in
//! the one canonical spelling the parser accepts (prefixes and fingerprints
//! sorted, duplicates dropped).

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::Args;
use wotgate::model::prefixes::parse_prefix;
use wotgate::model::time::{format_rfc3339, parse_duration, to_timestamp, MAX_TIMESTAMP};
use wotgate::statement::{
    accept::check_prefix,
    body::{check_domain, normalise_tls_fingerprint},
    AcceptRules, Mode, Statement,
};

use crate::args::parse_at;

/// Print a new statement body (unsigned) on standard output.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate statement new --domain example.org --prefix 2001:db8:10::/48 > example.org.body
  wotgate statement new --domain example.org --prefix 2001:db8:10::/48 --prefix 2001:db8:20::/48 \\
      --tls-key-fingerprint SHA256HEX --valid-for 30d --testing")]
pub struct New {
    /// The domain the statement speaks for (a User ID of the signing key).
    #[arg(long)]
    domain: String,
    /// An IPv6 prefix the domain's MTAs send from (repeatable).
    #[arg(long = "prefix", required = true)]
    prefixes: Vec<String>,
    /// SHA-256 of an MTA's TLS public key, as Postfix's
    /// ccert_pubkey_fingerprint (repeatable).
    #[arg(long = "tls-key-fingerprint")]
    tls: Vec<String>,
    /// How long the statement is valid, from --not-before (e.g. 90d, 12h).
    #[arg(long, default_value = "90d")]
    valid_for: String,
    /// Start of validity: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC), @UNIX-SECONDS, or `now`.
    #[arg(long, default_value = "now", value_parser = parse_at)]
    not_before: SystemTime,
    /// Mark the statement `testing` (receivers may only count it) instead of `enforce`.
    #[arg(long)]
    testing: bool,
    /// Serial number; defaults to --not-before in seconds since 1970, which
    /// increases with every new statement.
    #[arg(long)]
    serial: Option<u64>,
}

impl New {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let domain = self.domain.trim_end_matches('.').to_ascii_lowercase();
        check_domain(&domain)
            .map_err(anyhow::Error::msg)
            .context("--domain")?;
        let nb = to_timestamp(self.not_before);
        let valid = parse_duration(&self.valid_for)
            .map_err(anyhow::Error::msg)
            .context("--valid-for")?;
        let mut prefixes = Vec::new();
        for p in &self.prefixes {
            let net = parse_prefix(p)
                .map_err(anyhow::Error::msg)
                .context("--prefix")?;
            if let Err((_, why)) = check_prefix(
                &net,
                &AcceptRules {
                    allow_documentation_prefixes: true,
                    min_prefix_len: 0,
                    ..Default::default()
                },
            ) {
                bail!("--prefix {p}: {why}");
            }
            prefixes.push(net);
        }
        let tls = self
            .tls
            .iter()
            .map(|f| normalise_tls_fingerprint(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)
            .context("--tls-key-fingerprint")?;
        let mut st = Statement {
            domain,
            serial: self.serial.unwrap_or(nb),
            not_before: nb,
            not_after: nb
                .checked_add(valid.as_secs())
                .filter(|&t| t <= MAX_TIMESTAMP)
                .with_context(|| {
                    format!(
                        "--valid-for {}: the statement would end after {} (the latest time a statement can carry)",
                        self.valid_for,
                        format_rfc3339(MAX_TIMESTAMP)
                    )
                })?,
            mode: if self.testing {
                Mode::Testing
            } else {
                Mode::Enforce
            },
            prefixes,
            tls_key_sha256: tls,
        };
        // One spelling: prefixes and fingerprints sorted, each once.
        st.canonicalise();
        print!("{}", st.to_body());
        Ok(ExitCode::SUCCESS)
    }
}
