//! The controller's TOML configuration: raw serde structs with documented
//! defaults, validated by the same code as command-line flags (`settings`).

mod daemon;
mod policy;
mod recipients;

pub use daemon::{
    DaemonSection, GateSection, StartupPolicy, DEFAULT_MAX_PLAN_AGE, DEFAULT_METRICS_LISTEN,
    DEFAULT_PIN_DIRECTORY, DEFAULT_REFRESH_INTERVAL,
};
pub use policy::{
    check_authserv_id, PolicyMode, PolicySection, TlsAead, DEFAULT_MAX_STATE_AGE,
    DEFAULT_POLICY_SOCKET,
};
pub use recipients::{
    lookup_names, read_recipient_webs, Combine, Recipient, RecipientWeb,
    DEFAULT_MAX_RECIPIENT_WEBS, MAX_RECIPIENT_WEBS,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::source::local::{read_text, CONFIG_FILE};
use crate::source::settings::SourcesSettings;
use crate::source::ReadError;

use super::settings::{
    AcceptRules, SettingsError, StatementOptions, TestingPolicy, TrustOptions, TrustSettings,
    Vocabulary,
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Where rollback state lives (default /var/lib/wotgate).
    state_directory: Option<PathBuf>,
    trust: Option<RawTrust>,
    statements: Option<RawStatements>,
    load: Option<RawLoad>,
    gate: Option<daemon::RawGate>,
    daemon: Option<daemon::RawDaemon>,
    sources: Option<daemon::RawSources>,
    metrics: Option<daemon::RawMetrics>,
    policy: Option<policy::RawPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    /// Refuse a load that takes away more than this share of the loaded
    /// trusted (allow) entries, unless forced (default 50; 100 turns the
    /// bound off, but a load that leaves nothing trusted is always refused).
    max_shrink_percent: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    /// Keyring files or directories (OpenPGP certificates, armoured or
    /// binary). Required.
    keyrings: Option<Vec<PathBuf>>,
    /// Fingerprints of the fully trusted roots. Required.
    roots: Option<Vec<String>>,
    /// Longest chain of introducers below a root (default 2, at most 16).
    depth: Option<usize>,
    /// "certifications" (default: every valid certification by a trusted key
    /// introduces) or "trust-signatures" (only trust signatures delegate).
    mode: Option<String>,
    /// Flooding cap: certifications by known keys considered per certificate
    /// (default 1000).
    max_certifications_per_cert: Option<usize>,
    /// Flooding cap: bytes of such certifications per certificate (default 1 MiB).
    max_certification_bytes_per_cert: Option<usize>,
    /// Fingerprints of refused keys: never trusted; their statements deny.
    refuse: Option<Vec<String>>,
    /// Fingerprints whose certifications are ignored (the keys stay valid).
    ignore_certifications_by: Option<Vec<String>>,
    /// Directory of per-recipient webs, `<address or domain>.toml` (default:
    /// none, every recipient uses the system's web).
    recipients_directory: Option<PathBuf>,
    /// Most files in it (default 1000, at most 100000).
    max_recipient_webs: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStatements {
    /// Directory of `*.asc` statements (default /etc/wotgate/statements).
    directory: Option<PathBuf>,
    /// No prefix broader than this (default 32).
    min_prefix_len: Option<u8>,
    /// Most prefixes in one statement (default 64).
    max_prefixes_per_statement: Option<usize>,
    /// Largest armoured statement in bytes (default 65536, at most 1 MiB).
    max_statement_size: Option<usize>,
    /// Accept 2001:db8::/32 and 3fff::/20 (default false; for tests).
    allow_documentation_prefixes: Option<bool>,
    /// "allow" (default) or "count": what testing-mode statements do.
    testing: Option<String>,
}

/// The validated configuration; relative paths are resolved against the
/// configuration file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub state_directory: PathBuf,
    /// Keyring files or directories.
    pub keyrings: Vec<PathBuf>,
    /// Trust settings; their reference time is the time the file was read
    /// (see [`Config::trust_at`]).
    pub trust: TrustSettings,
    pub statements_directory: PathBuf,
    pub rules: AcceptRules,
    pub testing: TestingPolicy,
    /// `[load] max_shrink_percent`.
    pub max_shrink_percent: u8,
    /// `[gate]`: interfaces, settings, pins, static overrides.
    pub gate: GateSection,
    /// `[daemon]`: refresh interval, start-up policy, plan age bound.
    pub daemon: DaemonSection,
    /// `[sources]`: participants and the limits of fetching them.
    pub sources: SourcesSettings,
    /// `[metrics] listen`; `None` when turned off.
    pub metrics_listen: Option<SocketAddr>,
    /// `[policy]`: the Postfix policy server.
    pub policy: PolicySection,
    /// `[trust] recipients_directory`; `None`: no per-recipient webs.
    pub recipients_directory: Option<PathBuf>,
    /// `[trust] max_recipient_webs`.
    pub max_recipient_webs: usize,
    /// The per-recipient webs, sorted by recipient name; read by
    /// [`Config::load`] (empty after [`Config::parse`]).
    pub recipients: Vec<RecipientWeb>,
}

/// Default `[load] max_shrink_percent`.
pub const DEFAULT_MAX_SHRINK_PERCENT: u8 = 50;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(ReadError),
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {error}")]
    Invalid { file: String, error: SettingsError },
    /// A file in the recipients directory whose name is not a recipient.
    #[error("{file}: not a recipient's web: {problem} (name it <address>.toml or <domain>.toml)")]
    RecipientName { file: String, problem: String },
    /// Two files name the same recipient once lowercased.
    #[error("{first} and {second} are both the web of {recipient}: keep one")]
    DuplicateRecipient {
        recipient: String,
        first: String,
        second: String,
    },
    /// More files in the recipients directory than the bound allows.
    #[error("{directory}: more than {bound} recipient webs (*.toml), the bound trust.max_recipient_webs")]
    TooManyRecipients { directory: String, bound: usize },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = read_text(path, CONFIG_FILE).map_err(ConfigError::Read)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::parse(&text, &file, base)?;
        config.recipients = config.read_recipients()?;
        Ok(config)
    }

    /// Reads the per-recipient webs of `recipients_directory` against this
    /// configuration's trust settings; none without the directory.
    pub fn read_recipients(&self) -> Result<Vec<RecipientWeb>, ConfigError> {
        match &self.recipients_directory {
            None => Ok(Vec::new()),
            Some(dir) => read_recipient_webs(dir, &self.trust, self.max_recipient_webs),
        }
    }

    /// The web of trust for mail to `recipient_address`, case-insensitively:
    /// the address's own, else its domain's; `None`: the system's
    /// ([`Config::trust`]).
    pub fn web_for(&self, recipient_address: &str) -> Option<&RecipientWeb> {
        recipients::web_for(&self.recipients, recipient_address)
    }

    /// Parses configuration text; `file` names it in errors, `base` resolves
    /// relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.into(),
            message: e.to_string(),
        })?;
        let invalid = |error| ConfigError::Invalid {
            file: file.into(),
            error,
        };
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let t = raw.trust.unwrap_or_default();
        let keyrings: Vec<PathBuf> = t
            .keyrings
            .unwrap_or_default()
            .into_iter()
            .map(abs)
            .collect();
        if keyrings.is_empty() {
            return Err(invalid(SettingsError {
                key: "trust.keyrings",
                value: "[]".into(),
                problem: "at least one keyring is needed".into(),
            }));
        }
        let trust = TrustOptions {
            roots: t.roots.unwrap_or_default(),
            depth: t.depth,
            mode: t.mode,
            refuse: t.refuse.unwrap_or_default(),
            ignore_certifications_by: t.ignore_certifications_by.unwrap_or_default(),
            max_certifications_per_cert: t.max_certifications_per_cert,
            max_certification_bytes_per_cert: t.max_certification_bytes_per_cert,
        }
        .validate(Vocabulary::ConfigFile, SystemTime::now())
        .map_err(invalid)?;
        let max_recipient_webs = t.max_recipient_webs.unwrap_or(DEFAULT_MAX_RECIPIENT_WEBS);
        if !(1..=MAX_RECIPIENT_WEBS).contains(&max_recipient_webs) {
            return Err(invalid(bad(
                "trust.max_recipient_webs",
                &max_recipient_webs,
                "must be between 1 and 100000",
            )));
        }
        let recipients_directory = t.recipients_directory.map(abs);
        let s = raw.statements.unwrap_or_default();
        let (rules, testing) = StatementOptions {
            min_prefix_len: s.min_prefix_len,
            max_prefixes: s.max_prefixes_per_statement,
            max_size: s.max_statement_size,
            allow_documentation_prefixes: s.allow_documentation_prefixes,
            testing: s.testing,
        }
        .validate(Vocabulary::ConfigFile)
        .map_err(invalid)?;
        let max_shrink_percent = raw
            .load
            .and_then(|l| l.max_shrink_percent)
            .unwrap_or(DEFAULT_MAX_SHRINK_PERCENT);
        if max_shrink_percent > 100 {
            return Err(invalid(SettingsError {
                key: "load.max_shrink_percent",
                value: max_shrink_percent.to_string(),
                problem: "a percentage is 0..=100".into(),
            }));
        }
        let gate = raw
            .gate
            .unwrap_or_default()
            .validate(abs)
            .map_err(invalid)?;
        let daemon = raw.daemon.unwrap_or_default().validate().map_err(invalid)?;
        let sources = raw
            .sources
            .unwrap_or_default()
            .validate(abs)
            .map_err(invalid)?;
        let metrics_listen = raw
            .metrics
            .unwrap_or_default()
            .validate()
            .map_err(invalid)?;
        let policy = raw
            .policy
            .unwrap_or_default()
            .validate(abs)
            .map_err(invalid)?;
        Ok(Config {
            policy,
            gate,
            daemon,
            sources,
            metrics_listen,
            state_directory: abs(raw
                .state_directory
                .unwrap_or_else(|| "/var/lib/wotgate".into())),
            keyrings,
            trust,
            statements_directory: abs(s
                .directory
                .unwrap_or_else(|| "/etc/wotgate/statements".into())),
            rules,
            testing,
            max_shrink_percent,
            recipients_directory,
            max_recipient_webs,
            recipients: Vec::new(),
        })
    }

    /// The trust settings judged at `at`.
    pub fn trust_at(&self, at: SystemTime) -> TrustSettings {
        TrustSettings {
            reference_time: at,
            ..self.trust.clone()
        }
    }
}

/// The error for `key` holding `value`: `problem` says what is wrong.
fn bad(
    key: &'static str,
    value: &dyn std::fmt::Debug,
    problem: impl Into<String>,
) -> SettingsError {
    SettingsError {
        key,
        value: format!("{value:?}"),
        problem: problem.into(),
    }
}

/// A duration like "15m" at `key`, or `default` when the key is absent.
fn duration(
    key: &'static str,
    given: &Option<String>,
    default: std::time::Duration,
) -> Result<std::time::Duration, SettingsError> {
    match given {
        None => Ok(default),
        Some(s) => {
            super::time::parse_duration(s).map_err(|e| bad(key, s, format!("not {}", e.expected)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, "c.toml", Path::new("/etc/wotgate"))
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(&format!(
            "[trust]\nkeyrings = [\"ring.pgp\"]\nroots = [\"{}\"]\n",
            ROOT.to_lowercase()
        ))
        .unwrap();
        assert_eq!(c.keyrings, vec![PathBuf::from("/etc/wotgate/ring.pgp")]);
        assert_eq!(
            c.trust.roots.iter().map(|f| f.to_hex()).collect::<Vec<_>>(),
            vec![ROOT.to_string()]
        );
        assert_eq!(c.trust.depth, 2);
        assert_eq!(c.rules, AcceptRules::default());
        assert_eq!(c.testing, TestingPolicy::Allow);
        assert_eq!(c.state_directory, PathBuf::from("/var/lib/wotgate"));
        assert_eq!(c.max_shrink_percent, DEFAULT_MAX_SHRINK_PERCENT);
    }

    #[test]
    fn errors_name_key_and_value() {
        let base = format!("[trust]\nkeyrings = [\"r\"]\nroots = [\"{ROOT}\"]\n");
        let e = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert_eq!(
            e("[statements]\ntesting = \"maybe\"\n"),
            "c.toml: statements.testing = \"maybe\": expected \"allow\" or \"count\""
        );
        assert!(e("mode = \"gpg\"\n").contains("trust.mode = \"gpg\""));
        assert!(e("refuse = [\"abc\"]\n").contains("trust.refuse = \"abc\""));
        assert!(e(&format!("refuse = [\"{ROOT}\"]\n")).contains("a root cannot also be refused"));
        assert!(e("depth = 17\n").contains("trust.depth = 17: at most 16"));
        assert!(
            e("[statements]\nmin_prefix_len = 200\n").contains("statements.min_prefix_len = 200")
        );
        assert!(e("[statements]\ncolour = 1\n").contains("unknown field `colour`"));
        assert!(e("[load]\nmax_shrink_percent = 101\n").contains("load.max_shrink_percent = 101"));
        assert!(e("[load]\nmax_shrink = 1\n").contains("unknown field `max_shrink`"));
        assert!(parse("[trust]\nroots = []\n")
            .unwrap_err()
            .to_string()
            .contains("trust.keyrings"));
    }

    #[test]
    fn recipients_directory_is_read_by_load_only() {
        let base = format!("[trust]\nkeyrings = [\"r\"]\nroots = [\"{ROOT}\"]\n");
        let c = parse(&base).unwrap();
        assert_eq!(c.recipients_directory, None);
        assert_eq!(c.max_recipient_webs, DEFAULT_MAX_RECIPIENT_WEBS);
        let e = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert_eq!(
            e("max_recipient_webs = 100001\n"),
            "c.toml: trust.max_recipient_webs = 100001: must be between 1 and 100000"
        );
        assert!(e("max_recipient_webs = 0\n").contains("trust.max_recipient_webs = 0"));

        let dir = std::env::temp_dir().join(format!("wotgate-cfg-recip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("recipients.d")).unwrap();
        let file = dir.join("wotgate.toml");
        let text = format!("{base}recipients_directory = \"recipients.d\"\n");
        std::fs::write(&file, &text).unwrap();
        std::fs::write(
            dir.join("recipients.d/Alice@Example.org.toml"),
            "combine = \"extend\"\ndepth = 4\n",
        )
        .unwrap();
        // Parsing is pure: the path is resolved, nothing is read.
        let parsed = Config::parse(&text, "wotgate.toml", &dir).unwrap();
        assert_eq!(parsed.recipients_directory, Some(dir.join("recipients.d")));
        assert!(parsed.recipients.is_empty());
        let c = Config::load(&file).unwrap();
        assert_eq!(c.recipients.len(), 1);
        let w = c.web_for("alice@EXAMPLE.org").unwrap();
        assert_eq!((w.combine, w.trust.depth), (Combine::Extend, 4));
        assert_eq!(w.trust.reference_time, c.trust.reference_time);
        assert_eq!(c.web_for("bob@example.org"), None);
        // A file that goes bad fails the whole load, naming it.
        std::fs::write(
            dir.join("recipients.d/x.example.toml"),
            "combine = \"both\"\n",
        )
        .unwrap();
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.contains("x.example.toml: combine = \"both\""), "{e}");
        std::fs::remove_dir_all(dir.join("recipients.d")).unwrap();
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.contains("recipients.d: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_example_is_complete_and_says_the_defaults() {
        let text = include_str!("../../../../examples/wotgate.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.gate.interfaces, ["eth0"]);
        assert_eq!(c.gate.pin_directory, PathBuf::from(DEFAULT_PIN_DIRECTORY));
        // Shipped in observe mode for the roll-out (marked there); the
        // built-in default enforces.
        assert!(c.gate.observe && !c.gate.detach_on_stop);
        assert!(
            !parse(&text.replace("mode = \"observe\"", "mode = \"enforce\""))
                .unwrap()
                .gate
                .observe
        );
        assert_eq!(c.daemon.refresh_interval, DEFAULT_REFRESH_INTERVAL);
        assert_eq!(c.daemon.max_plan_age, DEFAULT_MAX_PLAN_AGE);
        assert_eq!(c.daemon.startup, StartupPolicy::Observe);
        assert_eq!(c.sources, SourcesSettings::default());
        assert_eq!(
            c.metrics_listen,
            Some(DEFAULT_METRICS_LISTEN.parse().unwrap())
        );
        // Every section the parser knows is in the example.
        for section in [
            "[trust]",
            "[statements]",
            "[load]",
            "[gate]",
            "[daemon]",
            "[sources]",
            "[sources.fetch]",
            "[sources.crawl]",
            "[metrics]",
            "[policy]",
        ] {
            assert!(text.contains(section), "{section}");
        }
        assert_eq!(
            c.policy,
            PolicySection {
                mode: PolicyMode::Observe,
                ..PolicySection::default()
            }
        );
        assert_eq!(c.max_recipient_webs, DEFAULT_MAX_RECIPIENT_WEBS);
        // The commented recipient's file is valid as shown.
        let (_, rest) = text
            .split_once("# --- recipients.d/alice@example.org.toml ---\n")
            .unwrap();
        let (file, _) = rest.split_once("# --- end ---").unwrap();
        let file: String = file
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let web =
            RecipientWeb::parse(Path::new("alice@example.org.toml"), &file, &c.trust).unwrap();
        assert_eq!(web.combine, Combine::Replace);
        assert_eq!(web.trust.roots.len(), 1);
        // A misspelt key in a new section is refused, naming it.
        let e = parse(&text.replace("detach_on_stop", "detach_on_exit")).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `detach_on_exit`"),
            "{e}"
        );
        let e = parse(&text.replace("max_redirects", "redirects")).unwrap_err();
        assert!(e.to_string().contains("unknown field `redirects`"), "{e}");
        let e = parse(&text.replace("startup = \"observe\"", "startup = \"later\"")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml: daemon.startup = \"later\": expected \"observe\" or \"enforce\""
        );
    }
}
