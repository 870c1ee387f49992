//! `wotgate doctor`: reads the local Postfix configuration (`postconf`), the
//! host's interfaces and the pinned gate, and says what stands between this
//! host and a correct roll-out, with the fix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::Args;
use wotgate::gate::Gate;
use wotgate::model::config::Config;
use wotgate::policy::doctor::{diagnose, diagnose_gate, HostInterface};
use wotgate::source::local::{read_text, CONFIG_FILE};

use crate::exit;

/// Check the Postfix configuration against wotgate's: the policy service
/// wired in the right stage and reachable from smtpd's chroot, its default
/// action, IPv6, client certificates and SHA-256 fingerprints, TLS 1.2+,
/// the recipe against forged Authentication-Results headers, and the gate
/// attached in native mode on the interface that carries the address
/// Postfix listens on. Exits 3 when something needs fixing.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate doctor --config /etc/wotgate/wotgate.toml
  wotgate doctor --config /etc/wotgate/wotgate.toml --postfix-config /etc/postfix-out
  wotgate doctor --config /etc/wotgate/wotgate.toml --json | jq '.[] | select(.ok | not)'")]
pub struct Doctor {
    /// The controller's configuration.
    #[arg(long)]
    config: PathBuf,
    /// Postfix's configuration directory (postconf -c).
    #[arg(long, default_value = "/etc/postfix")]
    postfix_config: PathBuf,
    /// Print the findings as JSON (check, ok, detail, fix).
    #[arg(long)]
    json: bool,
}

/// This network namespace's interfaces and their IPv6 addresses, from
/// /proc/net/if_inet6 (address, index, prefix length, scope, flags, name).
fn host_interfaces() -> Result<Vec<HostInterface>> {
    let path = "/proc/net/if_inet6";
    // Absent when IPv6 is disabled: no interface carries an IPv6 address.
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    };
    let mut out: Vec<HostInterface> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(hex), Some(name)) = (f.first(), f.get(5)) else {
            continue;
        };
        let Ok(bits) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        let addr = std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits));
        match out.iter_mut().find(|i| i.name == *name) {
            Some(i) => i.addresses.push(addr),
            None => out.push(HostInterface {
                name: name.to_string(),
                addresses: vec![addr],
            }),
        }
    }
    Ok(out)
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
        let mut findings = diagnose(&params, &cfg, &tables);
        let attachments = Gate::open(&cfg.gate.pin_directory)
            .and_then(|g| g.attachments())
            .map_err(|e| e.to_string());
        findings.extend(diagnose_gate(
            &cfg,
            params.get("inet_interfaces").map_or("all", String::as_str),
            &host_interfaces()?,
            attachments.as_deref().map_err(String::as_str),
        ));
        let all = findings.iter().all(|f| f.ok);
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&findings)?);
            return Ok(exit::code(all));
        }
        for f in &findings {
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
