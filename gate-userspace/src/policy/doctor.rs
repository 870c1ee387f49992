//! `wotgate doctor`'s judgement of a Postfix configuration against ours: what
//! stands between this host and a correct roll-out, each with the line to change.
//!
//! Pure: the caller passes `postconf`'s parameters (defaults included), the
//! text of the `header_checks` tables and, for the gate check (`gate`), the
//! host's interfaces and the gate's attachments; nothing here runs Postfix.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::config::{Config, TlsAead};

mod gate;
pub use gate::{diagnose_gate, HostInterface};

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
    /// The main.cf line (or file change) that fixes it.
    pub fix: Option<String>,
}

fn ok(check: &'static str, detail: String) -> Finding {
    Finding {
        check,
        ok: true,
        detail,
        fix: None,
    }
}

fn fix(check: &'static str, detail: String, line: String) -> Finding {
    Finding {
        check,
        ok: false,
        detail,
        fix: Some(line),
    }
}

/// How smtpd reaches the policy server: `unix:private/wotgate` (relative to
/// the queue directory, inside smtpd's chroot) or `inet:HOST:PORT`.
fn service_names(cfg: &Config, queue: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    if let Some(sock) = &cfg.policy.socket {
        match sock.strip_prefix(Path::new(queue)) {
            Ok(rel) => names.push(format!("unix:{}", rel.display())),
            Err(_) => {
                return Err(format!(
                    "[policy] socket {} is outside Postfix's queue_directory {queue}: a chrooted smtpd cannot reach it",
                    sock.display()
                ))
            }
        }
    }
    if let Some(a) = cfg.policy.tcp_listen {
        names.push(format!("inet:{}:{}", a.ip(), a.port()));
        if a.is_ipv6() {
            names.push(format!("inet:[{}]:{}", a.ip(), a.port()));
        }
    }
    Ok(names)
}

/// The `check_policy_service` clause naming one of `names` in `value`, if any
/// (the text from the service name to the end of its braces or of the word).
fn clause<'a>(value: &'a str, names: &[String]) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = value[from..].find("check_policy_service") {
        let start = from + i;
        let rest = &value[start + "check_policy_service".len()..];
        let t = rest.trim_start();
        let body = if let Some(inner) = t.strip_prefix('{') {
            let mut depth = 1;
            let mut end = inner.len();
            for (j, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            &inner[..end]
        } else {
            t.split([',', ' ', '\t']).next().unwrap_or("")
        };
        let service = body.trim().split([',', ' ', '\t']).next().unwrap_or("");
        if names.iter().any(|n| n == service) {
            return Some(body);
        }
        from = start + 1;
    }
    None
}

fn get<'a>(p: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    p.get(k).map(String::as_str).unwrap_or("")
}

/// Every check, in the order an operator would fix them. `tables` holds the
/// text of each `regexp:`/`pcre:` table named by `header_checks`.
pub fn diagnose(
    params: &BTreeMap<String, String>,
    cfg: &Config,
    tables: &[(String, String)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let queue = get(params, "queue_directory");
    let names = match service_names(cfg, queue) {
        Ok(n) => n,
        Err(e) => {
            out.push(fix(
                "policy-socket",
                e,
                format!("wotgate.toml: [policy] socket = \"{queue}/private/wotgate\""),
            ));
            return out;
        }
    };
    let want = names.first().cloned().unwrap_or_default();
    let line = format!(
        "check_policy_service {{ {want}, timeout=10s, {{ default_action = DEFER_IF_PERMIT 4.3.5 wotgate policy service unavailable }} }}"
    );
    let data = get(params, "smtpd_data_restrictions");
    match clause(data, &names) {
        None => out.push(fix(
            "policy-at-data",
            format!("smtpd_data_restrictions does not call the policy service ({want}): no verdict, no header"),
            format!("main.cf: smtpd_data_restrictions = {line}"),
        )),
        Some(body) => {
            out.push(ok(
                "policy-at-data",
                format!("smtpd_data_restrictions calls {want}"),
            ));
            let action = body
                .split_once("default_action")
                .map(|(_, a)| a.trim_start().trim_start_matches('=').trim().to_string());
            match action {
                Some(a) if a.to_ascii_uppercase().starts_with("DUNNO")
                    || a.to_ascii_uppercase().starts_with("OK")
                    || a.to_ascii_uppercase().starts_with("PERMIT") =>
                {
                    out.push(fix(
                        "policy-default-action",
                        format!("default_action = {a} accepts unverified mail when the policy server is down"),
                        format!("main.cf: {line}"),
                    ))
                }
                Some(a) => out.push(ok(
                    "policy-default-action",
                    format!("when the server is down: {a}"),
                )),
                None => out.push(ok(
                    "policy-default-action",
                    "when the server is down: Postfix's default 451 4.3.5 (temporary)".into(),
                )),
            }
        }
    }
    let rcpt = get(params, "smtpd_recipient_restrictions");
    let at_rcpt = clause(rcpt, &names).is_some();
    if !cfg.recipients.is_empty() && !at_rcpt {
        out.push(fix(
            "policy-at-rcpt",
            format!(
                "{} recipient(s) have their own web of trust, decided at RCPT, but smtpd_recipient_restrictions does not call the policy service",
                cfg.recipients.len()
            ),
            format!("main.cf: smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, {line}"),
        ));
    } else {
        out.push(ok(
            "policy-at-rcpt",
            if at_rcpt {
                "smtpd_recipient_restrictions calls it too (early rejection, per-recipient webs)"
                    .into()
            } else {
                "not at RCPT (optional without per-recipient webs)".into()
            },
        ));
    }
    let inet = get(params, "inet_protocols");
    if inet.contains("ipv6") || inet.contains("all") {
        out.push(ok("ipv6", format!("inet_protocols = {inet}")));
    } else {
        out.push(fix(
            "ipv6",
            format!("inet_protocols = {inet}: Postfix does not listen on IPv6, where every gated peer comes from"),
            "main.cf: inet_protocols = all".into(),
        ));
    }
    let ccert = get(params, "smtpd_tls_ask_ccert");
    let digest = get(params, "smtpd_tls_fingerprint_digest");
    if ccert != "yes" {
        out.push(fix(
            "tls-client-certificate",
            format!("smtpd_tls_ask_ccert = {ccert}: statements with tls-key-sha256 can never pass"),
            "main.cf: smtpd_tls_ask_ccert = yes".into(),
        ));
    } else {
        out.push(ok(
            "tls-client-certificate",
            "smtpd_tls_ask_ccert = yes".into(),
        ));
    }
    if !digest.eq_ignore_ascii_case("sha256") {
        out.push(fix(
            "tls-fingerprint-digest",
            format!("smtpd_tls_fingerprint_digest = {digest}: statements name SHA-256 public-key fingerprints"),
            "main.cf: smtpd_tls_fingerprint_digest = sha256".into(),
        ));
    } else {
        out.push(ok("tls-fingerprint-digest", "sha256".into()));
    }
    if cfg.policy.tls_aead != TlsAead::Never {
        let protos = get(params, "smtpd_tls_protocols").replace(' ', "");
        let modern = protos.contains(">=TLSv1.2")
            || (protos.contains("!TLSv1,") || protos.ends_with("!TLSv1"))
                && protos.contains("!TLSv1.1")
                && protos.contains("!SSLv3");
        if modern {
            out.push(ok(
                "tls-protocols",
                format!("smtpd_tls_protocols = {protos}"),
            ));
        } else {
            out.push(fix(
                "tls-protocols",
                format!("smtpd_tls_protocols = {protos} offers TLS older than 1.2; the policy rejects those sessions after the fact (tls_aead)"),
                "main.cf: smtpd_tls_protocols = >=TLSv1.2".into(),
            ));
        }
    }
    let internal = &cfg.policy.header_name;
    let recipe = if internal.eq_ignore_ascii_case("Authentication-Results") {
        Some(fix(
            "forged-header-recipe",
            "[policy] header_name is Authentication-Results itself: a forged header with our authserv-id cannot be told from ours".into(),
            "wotgate.toml: [policy] header_name = \"X-Wotgate-AR-<secret>\" and the README's header_checks recipe".into(),
        ))
    } else {
        let renames = tables.iter().any(|(_, t)| {
            t.lines()
                .any(|l| l.contains(internal.as_str()) && l.contains("REPLACE"))
        });
        let drops = tables.iter().any(|(_, t)| {
            t.lines()
                .any(|l| l.contains("Authentication-Results") && l.contains("IGNORE"))
        });
        if renames && drops {
            Some(ok(
                "forged-header-recipe",
                "header_checks renames our header and drops forged ones".into(),
            ))
        } else {
            Some(fix(
                "forged-header-recipe",
                format!(
                    "header_checks ({}) {}",
                    get(params, "header_checks"),
                    if renames {
                        "does not drop incoming Authentication-Results with our authserv-id"
                    } else {
                        "does not rename our internal header to Authentication-Results"
                    }
                ),
                "main.cf: header_checks = regexp:/etc/postfix/wotgate_header_checks (README, \"Forged Authentication-Results headers\")".into(),
            ))
        }
    };
    out.extend(recipe);
    out
}

#[cfg(test)]
mod tests;
