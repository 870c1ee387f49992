//! The validated settings every layer runs on (trust, statement rules), built by
//! one piece of code from the configuration file or from command-line flags.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use sequoia_openpgp::Fingerprint;

use super::fingerprint::parse_fingerprint;

/// Default local depth: keys our roots certified, and the keys those certified.
pub const DEFAULT_DEPTH: usize = 2;
/// Longest chain the settings accept.
pub const MAX_DEPTH: usize = 16;
/// Largest armoured statement any configuration may allow.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// How trust flows beyond the keys the roots certify directly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntroducerMode {
    /// Any valid certification by a trusted key makes the certified key
    /// trusted (and an introducer), within the local depth.
    #[default]
    Certifications,
    /// Only trust signatures delegate, honouring their level and regular
    /// expressions, capped by the local depth; plain certifications make a
    /// key trusted for delivery only.
    TrustSignatures,
}

impl IntroducerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IntroducerMode::Certifications => "certifications",
            IntroducerMode::TrustSignatures => "trust-signatures",
        }
    }
}

impl fmt::Display for IntroducerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntroducerMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "certifications" => Ok(IntroducerMode::Certifications),
            "trust-signatures" => Ok(IntroducerMode::TrustSignatures),
            _ => Err("expected \"certifications\" or \"trust-signatures\"".into()),
        }
    }
}

/// How the program is hooked into the interface's receive path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver, before an skb is allocated (the default).
    #[default]
    Native,
    /// Generic XDP after skb allocation: works everywhere, costs much more.
    Skb,
}

impl XdpMode {
    /// Every mode, in the order help texts list them.
    pub const ALL: [XdpMode; 2] = [XdpMode::Native, XdpMode::Skb];

    /// The name used on the command line, in pin names and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        }
    }
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for XdpMode {
    type Err = String;

    fn from_str(s: &str) -> Result<XdpMode, String> {
        XdpMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown XDP mode {s:?}: native or skb"))
    }
}

/// Caps against certificate flooding, applied per certificate to the
/// third-party certifications whose issuer IS in the keyring (certifications
/// by unknown issuers are skipped unverified and do not count against them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most certifications (by known issuers) considered per certificate;
    /// newest first, the rest are cut and reported.
    pub max_certifications_per_cert: usize,
    /// Most bytes of such certifications considered per certificate.
    pub max_certification_bytes_per_cert: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_certifications_per_cert: 1000,
            max_certification_bytes_per_cert: 1 << 20,
        }
    }
}

/// Everything a trust computation depends on besides the keyring and policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustSettings {
    /// Our own keys: trusted outright, the start of every path.
    pub roots: BTreeSet<Fingerprint>,
    /// Longest chain of certifications from a root (default 2).
    pub depth: usize,
    pub mode: IntroducerMode,
    /// Keys never trusted themselves (their certifications still count).
    pub refuse: BTreeSet<Fingerprint>,
    /// Keys whose certifications do not count (they may still be trusted).
    pub ignore_certifications_by: BTreeSet<Fingerprint>,
    pub limits: Limits,
    /// The time at which every validity is judged.
    pub reference_time: SystemTime,
}

impl TrustSettings {
    /// Settings with default depth, mode and limits and no exceptions.
    pub fn new(roots: impl IntoIterator<Item = Fingerprint>, reference_time: SystemTime) -> Self {
        TrustSettings {
            roots: roots.into_iter().collect(),
            depth: DEFAULT_DEPTH,
            mode: IntroducerMode::default(),
            refuse: BTreeSet::new(),
            ignore_certifications_by: BTreeSet::new(),
            limits: Limits::default(),
            reference_time,
        }
    }
}

/// What testing-mode statements do (configuration `testing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestingPolicy {
    /// Allowed like enforce statements, labelled as testing.
    #[default]
    Allow,
    /// Listed and counted in the plan, not loaded.
    Count,
}

impl FromStr for TestingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(TestingPolicy::Allow),
            "count" => Ok(TestingPolicy::Count),
            _ => Err("expected \"allow\" or \"count\"".into()),
        }
    }
}

/// Configurable limits on statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptRules {
    /// No prefix broader than this (default 32).
    pub min_prefix_len: u8,
    /// At most this many prefixes per statement (default 64).
    pub max_prefixes: usize,
    /// At most this many bytes of armoured statement (default 64 KiB).
    pub max_size: usize,
    /// 2001:db8::/32 and 3fff::/20 are refused unless this is set (tests).
    pub allow_documentation_prefixes: bool,
}

impl Default for AcceptRules {
    fn default() -> Self {
        AcceptRules {
            min_prefix_len: 32,
            max_prefixes: 64,
            max_size: 64 * 1024,
            allow_documentation_prefixes: false,
        }
    }
}

/// One setting, named in the vocabulary of whoever gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Roots,
    Depth,
    Mode,
    Refuse,
    IgnoreCertificationsBy,
    MaxCertifications,
    MaxCertificationBytes,
    MinPrefixLen,
    MaxPrefixes,
    MaxStatementSize,
    Testing,
}

/// Where settings came from, which decides how errors name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vocabulary {
    /// `trust.roots`, `statements.min_prefix_len`, ...
    ConfigFile,
    /// `--root`, `--min-prefix-len`, ...
    CommandLine,
    /// A recipient's own web (`recipients.d/NAME.toml`): the `[trust]` keys
    /// without the section, `roots`, `depth`, ...
    RecipientFile,
}

impl Vocabulary {
    /// The name of `key` as the operator wrote it.
    pub fn name(self, key: Key) -> &'static str {
        use Key::*;
        let (file, flag) = match key {
            Roots => ("trust.roots", "--root"),
            Depth => ("trust.depth", "--depth"),
            Mode => ("trust.mode", "--introducer-mode"),
            Refuse => ("trust.refuse", "--refuse"),
            IgnoreCertificationsBy => (
                "trust.ignore_certifications_by",
                "--ignore-certifications-by",
            ),
            MaxCertifications => ("trust.max_certifications_per_cert", "--max-certifications"),
            MaxCertificationBytes => (
                "trust.max_certification_bytes_per_cert",
                "--max-certification-bytes",
            ),
            MinPrefixLen => ("statements.min_prefix_len", "--min-prefix-len"),
            MaxPrefixes => ("statements.max_prefixes_per_statement", "--max-prefixes"),
            MaxStatementSize => ("statements.max_statement_size", "--max-statement-size"),
            Testing => ("statements.testing", "--testing"),
        };
        match self {
            Vocabulary::ConfigFile => file,
            Vocabulary::CommandLine => flag,
            Vocabulary::RecipientFile => file.strip_prefix("trust.").unwrap_or(file),
        }
    }
}

/// A setting with a value it cannot take; says which, in the giver's words:
/// `trust.depth = 17: ...` for a file, `--depth 17: ...` for a flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}{} {value}: {problem}", if key.starts_with('-') { "" } else { " =" })]
pub struct SettingsError {
    /// The key or flag, as the operator wrote it.
    pub key: &'static str,
    /// The offending value, quoted as Rust debug output.
    pub value: String,
    pub problem: String,
}

/// Trust settings as given, before validation.
#[derive(Clone, Debug, Default)]
pub struct TrustOptions {
    pub roots: Vec<String>,
    pub depth: Option<usize>,
    pub mode: Option<String>,
    pub refuse: Vec<String>,
    pub ignore_certifications_by: Vec<String>,
    pub max_certifications_per_cert: Option<usize>,
    pub max_certification_bytes_per_cert: Option<usize>,
}

/// Statement rules as given, before validation.
#[derive(Clone, Debug, Default)]
pub struct StatementOptions {
    pub min_prefix_len: Option<u8>,
    pub max_prefixes: Option<usize>,
    pub max_size: Option<usize>,
    pub allow_documentation_prefixes: Option<bool>,
    pub testing: Option<String>,
}

fn invalid(v: Vocabulary, key: Key, value: &dyn fmt::Debug, problem: &str) -> SettingsError {
    SettingsError {
        key: v.name(key),
        value: format!("{value:?}"),
        problem: problem.into(),
    }
}

fn fingerprints(
    v: Vocabulary,
    key: Key,
    given: &[String],
) -> Result<BTreeSet<Fingerprint>, SettingsError> {
    given
        .iter()
        .map(|f| {
            parse_fingerprint(f).map_err(|_| {
                invalid(
                    v,
                    key,
                    f,
                    "not a v4 (40 hex digits) or v6 (64 hex digits) fingerprint",
                )
            })
        })
        .collect()
}

impl TrustOptions {
    /// Validates the options into settings judged at `at`.
    pub fn validate(&self, v: Vocabulary, at: SystemTime) -> Result<TrustSettings, SettingsError> {
        self.build(v, &TrustSettings::new([], at), true)
    }

    /// Validates the options as an extension of `base`: roots, refused and
    /// ignored keys are added to `base`'s, a depth or mode given replaces
    /// `base`'s, limits not given stay `base`'s, and so does the reference
    /// time. No root of its own is needed.
    pub fn validate_extending(
        &self,
        v: Vocabulary,
        base: &TrustSettings,
    ) -> Result<TrustSettings, SettingsError> {
        self.build(v, base, false)
    }

    fn build(
        &self,
        v: Vocabulary,
        base: &TrustSettings,
        own_root_needed: bool,
    ) -> Result<TrustSettings, SettingsError> {
        let own_roots = fingerprints(v, Key::Roots, &self.roots)?;
        if own_root_needed && own_roots.is_empty() {
            return Err(invalid(
                v,
                Key::Roots,
                &self.roots,
                "at least one root is needed",
            ));
        }
        let depth = self.depth.unwrap_or(base.depth);
        if depth > MAX_DEPTH {
            return Err(invalid(v, Key::Depth, &depth, "at most 16"));
        }
        let mode = match &self.mode {
            None => base.mode,
            Some(m) => m
                .parse()
                .map_err(|p: String| invalid(v, Key::Mode, m, &p))?,
        };
        let own_refuse = fingerprints(v, Key::Refuse, &self.refuse)?;
        if let Some(r) = own_roots
            .iter()
            .chain(&base.roots)
            .find(|r| own_refuse.contains(r))
        {
            let problem = if own_roots.contains(r) {
                "a root cannot also be refused"
            } else {
                "a root cannot also be refused (it is a root of the system's [trust])"
            };
            return Err(invalid(v, Key::Refuse, &r.to_hex(), problem));
        }
        if let Some(r) = own_roots.iter().find(|r| base.refuse.contains(r)) {
            return Err(invalid(
                v,
                Key::Roots,
                &r.to_hex(),
                "refused by the system's [trust] refuse",
            ));
        }
        let limits = Limits {
            max_certifications_per_cert: self
                .max_certifications_per_cert
                .unwrap_or(base.limits.max_certifications_per_cert),
            max_certification_bytes_per_cert: self
                .max_certification_bytes_per_cert
                .unwrap_or(base.limits.max_certification_bytes_per_cert),
        };
        if limits.max_certifications_per_cert == 0 {
            return Err(invalid(v, Key::MaxCertifications, &0, "must be at least 1"));
        }
        if limits.max_certification_bytes_per_cert == 0 {
            return Err(invalid(
                v,
                Key::MaxCertificationBytes,
                &0,
                "must be at least 1",
            ));
        }
        let own_ignored = fingerprints(
            v,
            Key::IgnoreCertificationsBy,
            &self.ignore_certifications_by,
        )?;
        Ok(TrustSettings {
            roots: base.roots.iter().cloned().chain(own_roots).collect(),
            depth,
            mode,
            refuse: base.refuse.iter().cloned().chain(own_refuse).collect(),
            ignore_certifications_by: base
                .ignore_certifications_by
                .iter()
                .cloned()
                .chain(own_ignored)
                .collect(),
            limits,
            reference_time: base.reference_time,
        })
    }
}

impl StatementOptions {
    /// Validates the options into statement rules and the testing policy.
    pub fn validate(&self, v: Vocabulary) -> Result<(AcceptRules, TestingPolicy), SettingsError> {
        let d = AcceptRules::default();
        let rules = AcceptRules {
            min_prefix_len: self.min_prefix_len.unwrap_or(d.min_prefix_len),
            max_prefixes: self.max_prefixes.unwrap_or(d.max_prefixes),
            max_size: self.max_size.unwrap_or(d.max_size),
            allow_documentation_prefixes: self.allow_documentation_prefixes.unwrap_or(false),
        };
        if rules.min_prefix_len > 128 {
            return Err(invalid(
                v,
                Key::MinPrefixLen,
                &rules.min_prefix_len,
                "a prefix length is 0..=128",
            ));
        }
        if rules.max_prefixes == 0 {
            return Err(invalid(v, Key::MaxPrefixes, &0, "must be at least 1"));
        }
        if !(256..=MAX_STATEMENT_BYTES).contains(&rules.max_size) {
            return Err(invalid(
                v,
                Key::MaxStatementSize,
                &rules.max_size,
                "must be between 256 and 1048576 bytes",
            ));
        }
        let testing = match &self.testing {
            None => TestingPolicy::default(),
            Some(t) => t
                .parse()
                .map_err(|p: String| invalid(v, Key::Testing, t, &p))?,
        };
        Ok((rules, testing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

    fn opts() -> TrustOptions {
        TrustOptions {
            roots: vec![ROOT.to_lowercase()],
            ..Default::default()
        }
    }

    #[test]
    fn one_rule_two_vocabularies() {
        let at = SystemTime::UNIX_EPOCH;
        let s = opts().validate(Vocabulary::ConfigFile, at).unwrap();
        assert_eq!(s.depth, DEFAULT_DEPTH);
        assert_eq!(s.roots.iter().next().unwrap().to_hex(), ROOT);
        let deep = TrustOptions {
            depth: Some(17),
            ..opts()
        };
        let e = deep.validate(Vocabulary::ConfigFile, at).unwrap_err();
        assert_eq!(e.to_string(), "trust.depth = 17: at most 16");
        let e = deep.validate(Vocabulary::CommandLine, at).unwrap_err();
        assert_eq!(e.to_string(), "--depth 17: at most 16");
        let refused = TrustOptions {
            refuse: vec![ROOT.into()],
            ..opts()
        };
        let e = refused.validate(Vocabulary::CommandLine, at).unwrap_err();
        assert_eq!(e.key, "--refuse");
        let mode = TrustOptions {
            mode: Some("gpg".into()),
            ..opts()
        };
        let e = mode.validate(Vocabulary::CommandLine, at).unwrap_err();
        assert_eq!(e.key, "--introducer-mode");
        let none = TrustOptions::default();
        assert_eq!(
            none.validate(Vocabulary::ConfigFile, at).unwrap_err().key,
            "trust.roots"
        );
    }

    #[test]
    fn extending_adds_and_overrides() {
        const OTHER: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let at = SystemTime::UNIX_EPOCH;
        let base = TrustOptions {
            depth: Some(3),
            max_certifications_per_cert: Some(5),
            ..opts()
        }
        .validate(Vocabulary::ConfigFile, at)
        .unwrap();
        let more = TrustOptions {
            roots: vec![OTHER.into()],
            mode: Some("trust-signatures".into()),
            ..Default::default()
        };
        let s = more
            .validate_extending(Vocabulary::RecipientFile, &base)
            .unwrap();
        assert_eq!(s.roots.len(), 2);
        assert_eq!((s.depth, s.mode), (3, IntroducerMode::TrustSignatures));
        assert_eq!(s.limits.max_certifications_per_cert, 5);
        let none = TrustOptions::default();
        assert_eq!(
            none.validate_extending(Vocabulary::RecipientFile, &base)
                .unwrap()
                .roots,
            base.roots
        );
        let e = TrustOptions {
            depth: Some(17),
            ..Default::default()
        }
        .validate_extending(Vocabulary::RecipientFile, &base)
        .unwrap_err();
        assert_eq!(e.to_string(), "depth = 17: at most 16");
        assert_eq!(
            Vocabulary::RecipientFile.name(Key::IgnoreCertificationsBy),
            "ignore_certifications_by"
        );
    }

    #[test]
    fn statement_rules() {
        let (r, t) = StatementOptions::default()
            .validate(Vocabulary::ConfigFile)
            .unwrap();
        assert_eq!(r, AcceptRules::default());
        assert_eq!(t, TestingPolicy::Allow);
        let e = StatementOptions {
            max_size: Some(10),
            ..Default::default()
        }
        .validate(Vocabulary::CommandLine)
        .unwrap_err();
        assert_eq!(e.key, "--max-statement-size");
    }
}
