//! The operator's prefix file: `allow PREFIX [label]` / `deny PREFIX [label]`
//! lines that replace the gate's trusted set; parsing, validation and writing.

use std::{collections::BTreeMap, fmt, path::Path};

use ipnet::Ipv6Net;

use crate::source::local::{read_text, PREFIX_FILE};
use crate::source::ReadError;

/// What an entry does to a SYN whose source it matches (longest prefix wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
    pub fn to_raw(self) -> u32 {
        match self {
            Verdict::Allow => gate_common::VERDICT_ALLOW,
            Verdict::Deny => gate_common::VERDICT_DENY,
        }
    }
    pub fn from_raw(v: u32) -> Option<Verdict> {
        match v {
            gate_common::VERDICT_ALLOW => Some(Verdict::Allow),
            gate_common::VERDICT_DENY => Some(Verdict::Deny),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a trusted set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PrefixEntry {
    pub verdict: Verdict,
    pub prefix: Ipv6Net,
    /// Where the entry came from; empty when the file gave none.
    pub label: String,
}

/// A complete trusted set, keyed by prefix (a prefix appears once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixSet {
    entries: BTreeMap<Ipv6Net, PrefixEntry>,
}

/// Why a prefix file or set was rejected. Line numbers start at 1.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    #[error(transparent)]
    Read(ReadError),
    #[error("{file}:{line}: {problem}")]
    Line {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("{file}: {count} entries, more than the gate holds ({max})")]
    TooMany {
        file: String,
        count: usize,
        max: usize,
    },
}

/// Longest label kept in the kernel label table (bytes, UTF-8 safe cut).
pub const MAX_LABEL: usize = gate_common::LABEL_LEN - 1;

impl PrefixSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; a prefix given twice with different verdicts is an
    /// error, the same verdict twice keeps the first label.
    pub fn insert(&mut self, entry: PrefixEntry) -> Result<(), String> {
        let prefix = entry.prefix.trunc();
        if let Some(old) = self.entries.get(&prefix) {
            if old.verdict != entry.verdict {
                return Err(format!(
                    "{prefix} is both {} ({}) and {} ({})",
                    old.verdict, old.label, entry.verdict, entry.label
                ));
            }
            return Ok(());
        }
        self.entries.insert(prefix, PrefixEntry { prefix, ..entry });
        Ok(())
    }

    /// Removes the entry for `prefix`, returning it.
    pub fn remove(&mut self, prefix: &Ipv6Net) -> Option<PrefixEntry> {
        self.entries.remove(&prefix.trunc())
    }

    /// Puts `entry` in, replacing whatever the set held for its prefix
    /// (whatever its verdict); returns the entry it replaced.
    pub fn replace(&mut self, entry: PrefixEntry) -> Option<PrefixEntry> {
        let prefix = entry.prefix.trunc();
        self.entries.insert(prefix, PrefixEntry { prefix, ..entry })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in prefix order (deterministic).
    pub fn iter(&self) -> impl Iterator<Item = &PrefixEntry> {
        self.entries.values()
    }

    /// The entries inside `net` (`net` itself included), in order.
    pub fn within(&self, net: Ipv6Net) -> impl Iterator<Item = &PrefixEntry> {
        let net = net.trunc();
        let lo = Ipv6Net::new(net.network(), 0).expect("length 0");
        let hi = Ipv6Net::new(net.broadcast(), 128).expect("length 128");
        self.entries
            .range(lo..=hi)
            .map(|(_, e)| e)
            .filter(move |e| e.prefix.prefix_len() >= net.prefix_len())
    }

    pub fn get(&self, prefix: &Ipv6Net) -> Option<&PrefixEntry> {
        self.entries.get(prefix)
    }

    /// The entry a longest-prefix match for `addr` finds, as the kernel does.
    pub fn lookup(&self, addr: std::net::Ipv6Addr) -> Option<&PrefixEntry> {
        (0..=128u8).rev().find_map(|len| {
            let net = Ipv6Net::new(addr, len).ok()?.trunc();
            self.entries.get(&net)
        })
    }

    /// Reads and validates a prefix file; nothing is returned unless every
    /// line is valid.
    pub fn load(path: &Path) -> Result<PrefixSet, PrefixError> {
        let file = path.display().to_string();
        let text = read_text(path, PREFIX_FILE).map_err(PrefixError::Read)?;
        Self::parse(&text, &file)
    }

    /// Parses prefix-file text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<PrefixSet, PrefixError> {
        let mut set = PrefixSet::new();
        for (i, raw) in text.lines().enumerate() {
            let err = |problem: String| PrefixError::Line {
                file: file.to_string(),
                line: i + 1,
                problem,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (first, rest) = split_word(line);
            let (prefix_text, label) = split_word(rest);
            let verdict = match first {
                "allow" => Verdict::Allow,
                "deny" => Verdict::Deny,
                other => {
                    return Err(err(format!(
                        "unknown verdict {other:?}: expected \"allow\" or \"deny\""
                    )))
                }
            };
            if prefix_text.is_empty() {
                return Err(err(format!("{verdict} needs a prefix, e.g. 2001:db8::/48")));
            }
            let prefix = parse_prefix(prefix_text).map_err(err)?;
            let label = label.to_string();
            if label.len() > MAX_LABEL {
                return Err(err(format!(
                    "label is {} bytes, at most {MAX_LABEL} fit",
                    label.len()
                )));
            }
            if label.chars().any(char::is_control) {
                return Err(err("label contains control characters".into()));
            }
            set.insert(PrefixEntry {
                verdict,
                prefix,
                label,
            })
            .map_err(err)?;
        }
        let max = gate_common::TRUST_MAX_ENTRIES as usize;
        if set.len() > max {
            return Err(PrefixError::TooMany {
                file: file.to_string(),
                count: set.len(),
                max,
            });
        }
        Ok(set)
    }

    /// The set in prefix-file format, one entry a line, in prefix order.
    pub fn to_file_text(&self) -> String {
        let mut out = String::new();
        for e in self.iter() {
            out.push_str(e.verdict.as_str());
            out.push(' ');
            out.push_str(&e.prefix.to_string());
            if !e.label.is_empty() {
                out.push(' ');
                out.push_str(&e.label);
            }
            out.push('\n');
        }
        out
    }
}

/// The first whitespace-separated word and the trimmed rest.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

/// Parses an IPv6 prefix strictly: host bits must be zero, IPv4 is refused
/// with a message that says why.
pub fn parse_prefix(text: &str) -> Result<Ipv6Net, String> {
    if text.parse::<ipnet::Ipv4Net>().is_ok() || text.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "{text:?} is IPv4: the gate only trusts IPv6 sources (IPv4 SYNs to protected ports are always dropped)"
        ));
    }
    let net: Ipv6Net = if text.contains('/') {
        text.parse()
            .map_err(|_| format!("{text:?} is not an IPv6 prefix (expected e.g. 2001:db8::/48)"))?
    } else {
        let addr: std::net::Ipv6Addr = text
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv6 address or prefix"))?;
        Ipv6Net::new(addr, 128).expect("/128 is valid")
    };
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(text: &str) -> String {
        PrefixSet::parse(text, "t.prefixes")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_allow_deny_labels_comments() {
        let set = PrefixSet::parse(
            "# header\n\nallow 2001:db8::/32 isp example\n deny \t 2001:db8:bad::/48  # refused\nallow 2001:db8:1::1\n",
            "f",
        )
        .unwrap();
        assert_eq!(set.len(), 3);
        let e = set.get(&"2001:db8::/32".parse().unwrap()).unwrap();
        assert_eq!(
            (e.verdict, e.label.as_str()),
            (Verdict::Allow, "isp example")
        );
        let d = set.get(&"2001:db8:bad::/48".parse().unwrap()).unwrap();
        assert_eq!((d.verdict, d.label.as_str()), (Verdict::Deny, ""));
        assert!(set.get(&"2001:db8:1::1/128".parse().unwrap()).is_some());
    }

    #[test]
    fn longest_prefix_wins_in_lookup() {
        let set = PrefixSet::parse("allow 2001:db8::/32\ndeny 2001:db8:bad::/48\n", "f").unwrap();
        let v = |a: &str| set.lookup(a.parse().unwrap()).map(|e| e.verdict);
        assert_eq!(v("2001:db8::1"), Some(Verdict::Allow));
        assert_eq!(v("2001:db8:bad::1"), Some(Verdict::Deny));
        assert_eq!(v("2001:db9::1"), None);
    }

    #[test]
    fn every_error_names_file_line_and_problem() {
        assert_eq!(
            err_of("allow 2001:db8::/32\npermit 2001:db8::/48\n"),
            "t.prefixes:2: unknown verdict \"permit\": expected \"allow\" or \"deny\""
        );
        assert!(err_of("allow\n").starts_with("t.prefixes:1: allow needs a prefix"));
        assert!(err_of("deny   \n").starts_with("t.prefixes:1: deny needs a prefix"));
        assert!(err_of("\n\nallow 192.0.2.0/24\n")
            .starts_with("t.prefixes:3: \"192.0.2.0/24\" is IPv4"));
        assert!(err_of("allow 192.0.2.1\n").contains("is IPv4"));
        assert!(err_of("allow 2001:db8::/129\n").contains("not an IPv6 prefix"));
        assert!(err_of("allow nonsense\n").contains("not an IPv6 address or prefix"));
        assert!(err_of("allow 2001:db8::1/32\n").contains("did you mean 2001:db8::/32"));
        assert!(
            err_of(&format!("allow 2001:db8::/32 {}\n", "x".repeat(200)))
                .contains("label is 200 bytes")
        );
        assert!(err_of("allow 2001:db8::/32 a\u{7}b\n").contains("control characters"));
        let both = err_of("allow 2001:db8::/32 a\ndeny 2001:db8::/32 b\n");
        assert!(
            both.starts_with("t.prefixes:2: 2001:db8::/32 is both allow (a) and deny (b)"),
            "{both}"
        );
    }

    #[test]
    fn same_verdict_twice_is_kept_once() {
        let set = PrefixSet::parse("allow 2001:db8::/32 a\nallow 2001:db8::/32 b\n", "f").unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.iter().next().unwrap().label, "a");
    }

    #[test]
    fn missing_file_is_named() {
        let e = PrefixSet::load(Path::new("/nonexistent/x.prefixes")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/x.prefixes: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn file_text_roundtrips() {
        let text = "allow 2001:db8::/32 isp\ndeny 2001:db8:bad::/48 refused key\nallow 2001:db8:1::1/128\n";
        let set = PrefixSet::parse(text, "f").unwrap();
        let again = PrefixSet::parse(&set.to_file_text(), "g").unwrap();
        assert_eq!(set, again);
        // Prefix order, not input order.
        assert!(set.to_file_text().starts_with("allow 2001:db8::/32"));
    }
}
