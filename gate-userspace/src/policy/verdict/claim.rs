//! The checks one signed statement puts on a request: its expiry, sender
//! and HELO alignment, the TLS key binding and the TLS cipher policy.

use crate::model::config::TlsAead;
use crate::policy::request::{xtext_decode, Request};
use crate::policy::trust::Claim;
use crate::statement::body::normalise_tls_fingerprint;

use super::{printable, Checks, VerdictSettings};

/// `name` is `domain` or a subdomain of it (case-insensitive, a final dot ignored).
fn aligned(name: &str, domain: &str) -> bool {
    let n = name.trim_end_matches('.').as_bytes();
    let d = domain.as_bytes();
    // `domain` is as the statement has it; compared as the lower-cased name.
    let lower_eq = |a: &[u8], b: &[u8]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_ascii_lowercase() == *y)
    };
    lower_eq(n, d)
        || (n.len() > d.len()
            && n[n.len() - d.len() - 1] == b'.'
            && lower_eq(&n[n.len() - d.len()..], d))
}

/// TLS 1.3 suites are all AEAD; TLS 1.2 ones by name (CBC suites do not say CBC).
fn aead_ok(protocol: &str, cipher: &str) -> bool {
    let c = cipher.to_ascii_uppercase();
    match protocol {
        "TLSv1.3" => true,
        "TLSv1.2" => c.contains("GCM") || c.contains("CHACHA20") || c.contains("CCM"),
        _ => false,
    }
}

/// Runs the configured checks for one statement; the checks that held, or
/// the first that failed and why.
pub(super) fn check_claim(
    req: &Request,
    c: &Claim,
    s: &VerdictSettings,
    now: u64,
) -> Result<Checks, (&'static str, String)> {
    let mut held = Checks(0);
    held.push("prefix");
    if now >= c.not_after {
        return Err(("prefix", format!("the statement of {} expired", c.domain)));
    }
    let helo = req.get("helo_name");
    let helo_ok = helo.is_some_and(|h| aligned(h, &c.domain));
    if s.sender_alignment {
        match req.get("sender") {
            Some(sender) => {
                let dom = sender.rsplit_once('@').map_or("", |(_, d)| d);
                if !aligned(dom, &c.domain) {
                    return Err((
                        "sender",
                        format!(
                            "envelope sender <{}> is not in {} or a subdomain of it",
                            printable(sender, 120),
                            c.domain
                        ),
                    ));
                }
            }
            // A bounce (null sender) is judged by its HELO name, as SPF does.
            None if !helo_ok => {
                return Err((
                    "sender",
                    format!(
                        "null sender and HELO name {:?} is not in {} or a subdomain of it",
                        printable(helo.unwrap_or(""), 120),
                        c.domain
                    ),
                ));
            }
            None => {}
        }
        held.push("sender");
    }
    if s.helo_alignment {
        if !helo_ok {
            return Err((
                "helo",
                format!(
                    "HELO name {:?} is not {} or a subdomain of it",
                    printable(helo.unwrap_or(""), 120),
                    c.domain
                ),
            ));
        }
        held.push("helo");
    }
    if !c.tls_keys.is_empty() {
        let Some(raw) = req.get("ccert_pubkey_fingerprint") else {
            return Err(("tls-key", format!("no client certificate: {}'s statement lists TLS keys, so present one of them with STARTTLS", c.domain)));
        };
        let fpr = xtext_decode(raw).unwrap_or_default();
        let hex_len = fpr.chars().filter(char::is_ascii_hexdigit).count();
        if hex_len == 32 {
            return Err(("tls-key", "the receiving server reports MD5 certificate fingerprints; it needs smtpd_tls_fingerprint_digest = sha256 (postmaster: fix main.cf)".into()));
        }
        let Ok(fpr) = normalise_tls_fingerprint(&fpr) else {
            return Err((
                "tls-key",
                format!(
                    "certificate key fingerprint {:?} is not SHA-256",
                    printable(&fpr, 100)
                ),
            ));
        };
        if !c.tls_keys.contains(&fpr) {
            return Err((
                "tls-key",
                format!(
                    "client certificate key {fpr} is not one of the TLS keys in {}'s statement",
                    c.domain
                ),
            ));
        }
        held.push("tls-key");
    }
    let aead = match s.tls_aead {
        TlsAead::Always => true,
        TlsAead::Auto => !c.tls_keys.is_empty(),
        TlsAead::Never => false,
    };
    if aead {
        let proto = req.get("encryption_protocol").unwrap_or("");
        let cipher = req.get("encryption_cipher").unwrap_or("");
        if proto.is_empty() {
            return Err((
                "tls-aead",
                "no TLS: use STARTTLS with TLS 1.2 or 1.3 and an AEAD cipher".into(),
            ));
        }
        if !aead_ok(proto, cipher) {
            return Err(("tls-aead", format!("{} with {} is not TLS 1.2 or 1.3 with an AEAD cipher (AES-GCM, ChaCha20-Poly1305)", printable(proto, 20), printable(cipher, 60))));
        }
        held.push("tls-aead");
    }
    Ok(held)
}
