//! `wotgate doctor`: reads the local Postfix configuration (`postconf`) and
//! says what stands between this host and a correct roll-out, with the fix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::Args;
use wotgate::model::config::Config;
use wotgate::policy::doctor::diagnose;
use wotgate::source::local::{read_text, CONFIG_FILE};

use crate::exit;

/// Check the Postfix configuration against wotgate's: the policy service
/// wired in the right stage and reachable from smtpd's chroot, its default
/// action, IPv6, client certificates and SHA-256 fingerprints, TLS 1.2+,
/// and the recipe against forged Authentication-Results headers. Exits 3
/// when something needs fixing.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate doctor --config /etc/wotgate/wotgate.toml
  wotgate doctor --config /etc/wotgate/wotgate.toml --postfix-config /etc/postfix-out")]
pub struct Doctor {
    /// The controller's configuration.
    #[arg(long)]
    config: PathBuf,
    /// Postfix's configuration directory (postconf -c).
    #[arg(long, default_value = "/etc/postfix")]
    postfix_config: PathBuf,
}

impl Doctor {
    pub fn run(self) -> Result<ExitCode> {
        let cfg = Config::load(&self.config)?;
        // -x: values with $parameters and defaults expanded, as smtpd sees them.
        let out = Command::new("postconf")
            .arg("-x")
            .arg("-c")
            .arg(&self.postfix_config)
            .output()
            .context("running postconf (is Postfix installed?)")?;
        if !out.status.success() {
            bail!(
                "postconf -c {} failed: {}",
                self.postfix_config.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut params = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.split_once(" = ") {
                params.insert(k.trim().to_string(), v.trim().to_string());
            } else if let Some(k) = line.strip_suffix(" =") {
                params.insert(k.trim().to_string(), String::new());
            }
        }
        let mut tables = Vec::new();
        let checks = params.get("header_checks").cloned().unwrap_or_default();
        for spec in checks.split([',', ' ']).filter(|s| !s.is_empty()) {
            let Some((kind, path)) = spec.split_once(':') else {
                continue;
            };
            if kind == "regexp" || kind == "pcre" {
                let text = read_text(std::path::Path::new(path), CONFIG_FILE)
                    .with_context(|| format!("header_checks table {spec}"))?;
                tables.push((spec.to_string(), text));
            }
        }
        let findings = diagnose(&params, &cfg, &tables);
        let mut all = true;
        for f in &findings {
            all &= f.ok;
            outln!(
                "{} {:24} {}",
                if f.ok { "ok  " } else { "FIX " },
                f.check,
                f.detail
            );
            if let Some(fix) = &f.fix {
                outln!("     {:24} {}", "", fix);
            }
        }
        Ok(exit::code(all))
    }
}
