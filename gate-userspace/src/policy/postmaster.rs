//! The public acceptable-use page (`wotgate postmaster`): how to deliver mail
//! to this MX, rendered as plain text and as HTML from the running configuration.
//!
//! The HTML is one self-contained document without CSS or scripts (headings,
//! lists and preformatted examples read well as they are); every value from
//! the configuration is escaped.

use std::fmt::Write;

use crate::model::config::{Config, PolicyMode, TlsAead};
use crate::wot::IntroducerMode;

/// What the page says, taken from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The MX host name (the policy's authserv-id by default).
    pub host: String,
    /// Whom to write to about delivery problems.
    pub contact: String,
    /// Our trust roots' fingerprints.
    pub roots: Vec<String>,
    pub depth: usize,
    pub trust_signatures_only: bool,
    pub min_prefix_len: u8,
    pub max_prefixes: usize,
    pub max_statement_size: usize,
    pub tls: TlsAead,
    pub sender_alignment: bool,
    pub helo_alignment: bool,
    pub enforced: bool,
    pub policy_url: Option<String>,
    /// Recipients with a web of trust of their own.
    pub recipient_webs: usize,
}

/// One section: a heading and its paragraphs or list items.
struct Section {
    title: &'static str,
    paragraphs: Vec<String>,
    list: Vec<String>,
    example: Option<String>,
}

impl Page {
    /// The page for `cfg`; `host` and `contact` default to the policy's
    /// authserv-id and `postmaster@` it.
    pub fn from_config(cfg: &Config, host: Option<&str>, contact: Option<&str>) -> Page {
        let host = host
            .map(str::to_string)
            .or_else(|| cfg.policy.authserv_id.clone())
            .unwrap_or_else(|| "this MX".to_string());
        Page {
            contact: contact
                .map(str::to_string)
                .unwrap_or_else(|| format!("postmaster@{host}")),
            host,
            roots: cfg.trust.roots.iter().map(|f| f.to_hex()).collect(),
            depth: cfg.trust.depth,
            trust_signatures_only: cfg.trust.mode == IntroducerMode::TrustSignatures,
            min_prefix_len: cfg.rules.min_prefix_len,
            max_prefixes: cfg.rules.max_prefixes,
            max_statement_size: cfg.rules.max_size,
            tls: cfg.policy.tls_aead,
            sender_alignment: cfg.policy.sender_alignment,
            helo_alignment: cfg.policy.helo_alignment,
            enforced: cfg.policy.mode == PolicyMode::Enforce && !cfg.gate.observe,
            policy_url: cfg.policy.policy_url.clone(),
            recipient_webs: cfg.recipients.len(),
        }
    }

    fn sections(&self) -> Vec<Section> {
        let mut out = Vec::new();
        out.push(Section {
            title: "Who may deliver",
            paragraphs: vec![
                format!(
                    "{} accepts SMTP only over IPv6, and only from networks that the sending domain has named in a signed network statement, signed by an OpenPGP key this server trusts. Connections from other sources, and from IPv4, are dropped before the SMTP greeting.",
                    self.host
                ),
                if self.enforced {
                    "This policy is enforced.".to_string()
                } else {
                    "This policy is being rolled out: mail that does not meet it is still accepted for now and labelled.".to_string()
                },
            ],
            list: vec![],
            example: None,
        });
        let mode = if self.trust_signatures_only {
            "only trust signatures delegate (a plain certification authenticates a key but makes it no introducer)"
        } else {
            "every valid certification by a trusted key counts"
        };
        out.push(Section {
            title: "Whose keys are trusted",
            paragraphs: vec![
                format!(
                    "A key is trusted when a chain of at most {} valid OpenPGP certification(s) leads to it from one of these trust roots; {mode}. The key's User ID must name your mail domain.",
                    self.depth
                ),
            ],
            list: self.roots.clone(),
            example: None,
        });
        let mut rules = vec![
            format!(
                "prefixes: global unicast IPv6, none broader than /{}, at most {} per statement",
                self.min_prefix_len, self.max_prefixes
            ),
            format!(
                "at most {} bytes, one OpenPGP signature by the domain's key",
                self.max_statement_size
            ),
            "a validity window (not-before, not-after) and a serial that only grows".to_string(),
        ];
        if self.sender_alignment {
            rules.push("the envelope sender's domain must be the statement's domain or a subdomain (bounces: the HELO name)".into());
        }
        if self.helo_alignment {
            rules.push("the HELO name must be the statement's domain or a subdomain of it".into());
        }
        out.push(Section {
            title: "The signed network statement",
            paragraphs: vec!["Publish a statement signed with your domain's key that lists the networks your mail leaves from:".into()],
            list: rules,
            example: Some(
                "version: WOTGATEv1\ndomain: example.org\nserial: 7\nnot-before: 2026-12-01T00:00:00Z\nnot-after: 2027-01-01T00:00:00Z\nmode: enforce\nprefix: 2001:db8:1::/48\ntls-key-sha256: AB:CD:...:EF (optional)\n"
                    .into(),
            ),
        });
        let tls = match self.tls {
            TlsAead::Always => "Every sender must use STARTTLS with TLS 1.2 or 1.3 and an AEAD cipher (AES-GCM, ChaCha20-Poly1305).",
            TlsAead::Auto => "When your statement lists tls-key-sha256 fingerprints, present a client certificate with one of those keys over STARTTLS, with TLS 1.2 or 1.3 and an AEAD cipher (AES-GCM, ChaCha20-Poly1305).",
            TlsAead::Never => "When your statement lists tls-key-sha256 fingerprints, present a client certificate with one of those keys over STARTTLS.",
        };
        out.push(Section {
            title: "TLS",
            paragraphs: vec![tls.to_string()],
            list: vec![],
            example: None,
        });
        if self.recipient_webs > 0 {
            out.push(Section {
                title: "Recipients with their own web of trust",
                paragraphs: vec![format!(
                    "{} recipient(s) here decide by their own trust roots; mail to them may be accepted or refused independently of the rules above, per recipient.",
                    self.recipient_webs
                )],
                list: vec![],
                example: None,
            });
        }
        let mut contact = vec![format!(
            "Rejections say which check failed (5.7.1). Questions: {}.",
            self.contact
        )];
        if let Some(u) = &self.policy_url {
            contact.push(format!("This page: {u}"));
        }
        out.push(Section {
            title: "Contact",
            paragraphs: contact,
            list: vec![],
            example: None,
        });
        out
    }

    /// The page as plain text.
    pub fn text(&self) -> String {
        let mut s = format!("Mail delivery policy of {}\n", self.host);
        for sec in self.sections() {
            let _ = write!(s, "\n{}\n{}\n", sec.title, "-".repeat(sec.title.len()));
            for p in &sec.paragraphs {
                let _ = writeln!(s, "{p}");
            }
            for i in &sec.list {
                let _ = writeln!(s, "  - {i}");
            }
            if let Some(e) = &sec.example {
                for l in e.lines() {
                    let _ = writeln!(s, "    {l}");
                }
            }
        }
        s
    }

    /// The page as an HTML5 document (no CSS, no scripts).
    pub fn html(&self) -> String {
        let title = esc(&format!("Mail delivery policy of {}", self.host));
        let mut s = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n"
        );
        for sec in self.sections() {
            let _ = writeln!(s, "<h2>{}</h2>", esc(sec.title));
            for p in &sec.paragraphs {
                let _ = writeln!(s, "<p>{}</p>", esc(p));
            }
            if !sec.list.is_empty() {
                s.push_str("<ul>\n");
                for i in &sec.list {
                    let _ = writeln!(s, "<li><code>{}</code></li>", esc(i));
                }
                s.push_str("</ul>\n");
            }
            if let Some(e) = &sec.example {
                let _ = writeln!(s, "<pre>{}</pre>", esc(e));
            }
        }
        s.push_str("</body>\n</html>\n");
        s
    }
}

/// HTML text escaping.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Page {
        Page {
            host: "mx.example.org".into(),
            contact: "<script>alert(1)</script>@example.org".into(),
            roots: vec!["AB".repeat(20)],
            depth: 2,
            trust_signatures_only: false,
            min_prefix_len: 32,
            max_prefixes: 64,
            max_statement_size: 65536,
            tls: TlsAead::Auto,
            sender_alignment: true,
            helo_alignment: false,
            enforced: true,
            policy_url: Some("https://mx.example.org/policy?a=1&b=2".into()),
            recipient_webs: 0,
        }
    }

    /// Every tag this page uses is closed in order (void `meta` aside), and
    /// no raw `<`, `>` or `&` appears in text.
    fn well_formed(html: &str) -> Result<(), String> {
        let body = html.strip_prefix("<!DOCTYPE html>\n").ok_or("no doctype")?;
        let mut stack: Vec<String> = Vec::new();
        let mut rest = body;
        while let Some(i) = rest.find(['<', '>', '&']) {
            let (text, tail) = rest.split_at(i);
            let _ = text;
            match tail.as_bytes()[0] {
                b'>' => return Err(format!("stray > near {:?}", &tail[..tail.len().min(20)])),
                b'&' => {
                    let end = tail.find(';').ok_or("unterminated entity")?;
                    if !["&amp", "&lt", "&gt", "&quot", "&#39"].contains(&&tail[..end]) {
                        return Err(format!("unknown entity {}", &tail[..end]));
                    }
                    rest = &tail[end + 1..];
                }
                _ => {
                    let end = tail.find('>').ok_or("unterminated tag")?;
                    let tag = &tail[1..end];
                    let name = tag.split_whitespace().next().unwrap_or("");
                    if let Some(closing) = name.strip_prefix('/') {
                        if stack.pop().as_deref() != Some(closing) {
                            return Err(format!("</{closing}> closes nothing open"));
                        }
                    } else if name != "meta" {
                        stack.push(name.to_string());
                    }
                    rest = &tail[end + 1..];
                }
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    #[test]
    fn html_is_well_formed_and_escapes_configuration_values() {
        let p = page();
        let html = p.html();
        well_formed(&html).unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("?a=1&amp;b=2"));
        assert!(html.contains(&"AB".repeat(20)));
        assert!(!html.contains("style"), "readable without CSS: none used");
        for needle in ["IPv6", "/32", "tls-key-sha256", "at most 2 valid", "5.7.1"] {
            assert!(html.contains(needle), "{needle}");
        }
        // The checker catches what it should.
        assert!(well_formed("<!DOCTYPE html>\n<p>a<b</p>").is_err());
        assert!(well_formed("<!DOCTYPE html>\n<p>a & b</p>").is_err());
        assert!(well_formed("<!DOCTYPE html>\n<ul><li>x</ul>").is_err());
    }

    #[test]
    fn text_says_the_same_and_follows_the_settings() {
        let mut p = page();
        let t = p.text();
        assert!(t.starts_with("Mail delivery policy of mx.example.org\n"));
        assert!(t.contains("envelope sender"));
        assert!(!t.contains("HELO name must"));
        assert!(t.contains("This policy is enforced."));
        p.helo_alignment = true;
        p.enforced = false;
        p.tls = TlsAead::Always;
        p.recipient_webs = 3;
        let t = p.text();
        assert!(t.contains("HELO name must"));
        assert!(t.contains("being rolled out"));
        assert!(t.contains("Every sender must use STARTTLS"));
        assert!(t.contains("3 recipient(s)"));
        well_formed(&p.html()).unwrap();
    }
}
