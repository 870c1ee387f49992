//! Where a participant publishes: the URLs of its statement, its published
//! certifications and its WKD key, derived from its mail domain alone.

use crate::statement::body::check_domain;

/// The local part looked up in WKD for a participant domain.
pub const WKD_LOCAL_PART: &str = "postmaster";

/// What is fetched from a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// Its signed statement (`statement.asc`).
    Statement,
    /// Its certificate, from WKD for `postmaster@DOMAIN`.
    Wkd,
    /// The certificates it certified, with its certifications (`certified.pgp`).
    Certified,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [
        SourceKind::Statement,
        SourceKind::Wkd,
        SourceKind::Certified,
    ];

    /// A short stable name (cache file names, metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Statement => "statement",
            SourceKind::Wkd => "wkd",
            SourceKind::Certified => "certified",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A participant's mail domain, checked like a statement's `domain` (lower-case
/// LDH labels, IDNs as `xn--`, at least two labels): safe in a URL host and as
/// a cache directory name. Upper case is folded first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn parse(s: &str) -> Result<Domain, String> {
        let d = s.trim().to_ascii_lowercase();
        check_domain(&d)?;
        Ok(Domain(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https://DOMAIN/.well-known/wotgate/statement.asc`
    pub fn statement_url(&self) -> String {
        format!("https://{}/.well-known/wotgate/statement.asc", self.0)
    }

    /// `https://DOMAIN/.well-known/wotgate/certified.pgp`
    pub fn certified_url(&self) -> String {
        format!("https://{}/.well-known/wotgate/certified.pgp", self.0)
    }

    /// The address looked up in WKD: `postmaster@DOMAIN`.
    pub fn wkd_address(&self) -> String {
        format!("{WKD_LOCAL_PART}@{}", self.0)
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_a_participant() {
        let d = Domain::parse("Alpha.Example").unwrap();
        assert_eq!(d.as_str(), "alpha.example");
        assert_eq!(
            d.statement_url(),
            "https://alpha.example/.well-known/wotgate/statement.asc"
        );
        assert_eq!(
            d.certified_url(),
            "https://alpha.example/.well-known/wotgate/certified.pgp"
        );
        assert_eq!(d.wkd_address(), "postmaster@alpha.example");
    }

    #[test]
    fn hostile_domains_are_refused() {
        for bad in [
            "",
            "localhost",
            "../etc",
            "a/b.example",
            "alpha.example.",
            "alpha..example",
            "-a.example",
            "a b.example",
            "alpha.example:8443",
            "user@alpha.example",
            "bücher.example",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad:?}");
        }
    }
}
