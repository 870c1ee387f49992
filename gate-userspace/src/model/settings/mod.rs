//! The validated settings every layer runs on (trust, statement rules), built by
//! one piece of code from the configuration file or from command-line flags.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use sequoia_openpgp::Fingerprint;

mod options;
#[cfg(test)]
mod tests;
mod vocabulary;

pub use options::{StatementOptions, TrustOptions};
pub use vocabulary::{Key, SettingsError, Vocabulary};

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
