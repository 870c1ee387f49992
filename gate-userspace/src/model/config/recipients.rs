//! Per-recipient webs of trust: one `<recipient>.toml` per address or domain
//! in `[trust] recipients_directory`, replacing or extending the system's `[trust]`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use serde::Deserialize;

use super::ConfigError;
use crate::model::settings::{SettingsError, TrustOptions, TrustSettings, Vocabulary};
use crate::source::local::{list_files, read_text, RECIPIENT_FILE};

/// Default `[trust] max_recipient_webs`.
pub const DEFAULT_MAX_RECIPIENT_WEBS: usize = 1000;
/// The largest `[trust] max_recipient_webs` accepted.
pub const MAX_RECIPIENT_WEBS: usize = 100_000;

/// Who a web is for: one address, or every address of a domain (lowercase).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Recipient {
    Address(String),
    Domain(String),
}

impl Recipient {
    /// An address (`local@domain`) or a domain, lowercased; the error says
    /// what is wrong with it.
    pub fn parse(s: &str) -> Result<Recipient, String> {
        let s = s.to_lowercase();
        match s.split_once('@') {
            None => check_domain(&s).map(|()| Recipient::Domain(s)),
            Some((local, domain)) => {
                if local.is_empty() {
                    return Err("an address needs a local part before the @".into());
                }
                if local.chars().any(char::is_whitespace) {
                    return Err("the local part of an address has no whitespace".into());
                }
                check_domain(domain).map_err(|e| format!("after the @: {e}"))?;
                Ok(Recipient::Address(s))
            }
        }
    }

    /// The address or domain, as files and lookups name it.
    pub fn name(&self) -> &str {
        match self {
            Recipient::Address(a) => a,
            Recipient::Domain(d) => d,
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Dot-separated labels of ASCII letters, digits and hyphens.
fn check_domain(d: &str) -> Result<(), String> {
    if d.is_empty() {
        return Err("an empty domain".into());
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err(format!("{d:?} has an empty label"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!(
                "{label:?} is not a domain label (letters, digits, hyphens)"
            ));
        }
    }
    Ok(())
}

/// How a recipient's file relates to the system's `[trust]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// The file is the whole web; what it leaves out takes the documented
    /// defaults, not the system's.
    Replace,
    /// Roots, refused and ignored keys are added to the system's; a depth or
    /// mode given replaces the system's.
    Extend,
}

impl Combine {
    pub fn as_str(self) -> &'static str {
        match self {
            Combine::Replace => "replace",
            Combine::Extend => "extend",
        }
    }
}

impl fmt::Display for Combine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Combine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "replace" => Ok(Combine::Replace),
            "extend" => Ok(Combine::Extend),
            _ => Err("expected \"replace\" or \"extend\"".into()),
        }
    }
}

/// One recipient's web of trust, resolved against the system's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientWeb {
    pub recipient: Recipient,
    /// The file it was read from.
    pub file: PathBuf,
    pub combine: Combine,
    /// Fully resolved (extend merged with the system's), reference time as
    /// `Config.trust`'s.
    pub trust: TrustSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipientWeb {
    combine: Option<String>,
    roots: Option<Vec<String>>,
    depth: Option<usize>,
    mode: Option<String>,
    refuse: Option<Vec<String>>,
    ignore_certifications_by: Option<Vec<String>>,
    // System-wide keys, read only to refuse them with a reason.
    keyrings: Option<toml::Value>,
    max_certifications_per_cert: Option<toml::Value>,
    max_certification_bytes_per_cert: Option<toml::Value>,
}

const KEYS_ARE_THE_SYSTEMS: &str = "not allowed in a recipient's file: keys come from the \
     system's sources ([trust] keyrings, WKD, published certifications)";
const LIMITS_ARE_THE_SYSTEMS: &str =
    "not allowed in a recipient's file: the flooding limits are the system's ([trust])";

impl RecipientWeb {
    /// Parses `text`, the content of `file` (named `<recipient>.toml`), and
    /// resolves it against the system's settings. Pure: reads nothing.
    pub fn parse(
        file: &Path,
        text: &str,
        system: &TrustSettings,
    ) -> Result<RecipientWeb, ConfigError> {
        let name = file.display().to_string();
        let recipient = recipient_of(file)?;
        let raw: RawRecipientWeb = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: name.clone(),
            message: e.to_string(),
        })?;
        let invalid = |error| ConfigError::Invalid {
            file: name.clone(),
            error,
        };
        let system_wide = [
            ("keyrings", &raw.keyrings, KEYS_ARE_THE_SYSTEMS),
            (
                "max_certifications_per_cert",
                &raw.max_certifications_per_cert,
                LIMITS_ARE_THE_SYSTEMS,
            ),
            (
                "max_certification_bytes_per_cert",
                &raw.max_certification_bytes_per_cert,
                LIMITS_ARE_THE_SYSTEMS,
            ),
        ];
        for (key, value, problem) in system_wide {
            if let Some(value) = value {
                return Err(invalid(SettingsError {
                    key,
                    value: value.to_string(),
                    problem: problem.into(),
                }));
            }
        }
        let combine: Combine = match &raw.combine {
            None => {
                return Err(ConfigError::Syntax {
                    file: name.clone(),
                    message: "combine is required: \"replace\" (this file is the whole web) \
                              or \"extend\" (added to the system's [trust])"
                        .into(),
                })
            }
            Some(c) => c.parse().map_err(|problem| {
                invalid(SettingsError {
                    key: "combine",
                    value: format!("{c:?}"),
                    problem,
                })
            })?,
        };
        let options = TrustOptions {
            roots: raw.roots.unwrap_or_default(),
            depth: raw.depth,
            mode: raw.mode,
            refuse: raw.refuse.unwrap_or_default(),
            ignore_certifications_by: raw.ignore_certifications_by.unwrap_or_default(),
            max_certifications_per_cert: None,
            max_certification_bytes_per_cert: None,
        };
        let v = Vocabulary::RecipientFile;
        let trust = match combine {
            Combine::Replace => options
                .validate(v, system.reference_time)
                .map(|t| TrustSettings {
                    limits: system.limits,
                    ..t
                }),
            Combine::Extend => options.validate_extending(v, system),
        }
        .map_err(invalid)?;
        Ok(RecipientWeb {
            recipient,
            file: file.to_path_buf(),
            combine,
            trust,
        })
    }

    /// The web's trust settings judged at `at`.
    pub fn trust_at(&self, at: SystemTime) -> TrustSettings {
        TrustSettings {
            reference_time: at,
            ..self.trust.clone()
        }
    }
}

/// The recipient a file is for, from its name `<recipient>.toml`.
fn recipient_of(file: &Path) -> Result<Recipient, ConfigError> {
    let bad = |problem: String| ConfigError::RecipientName {
        file: file.display().to_string(),
        problem,
    };
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad("not UTF-8".into()))?;
    let stem = name
        .strip_suffix(".toml")
        .ok_or_else(|| bad("does not end in .toml".into()))?;
    Recipient::parse(stem).map_err(bad)
}

/// Reads the recipients' webs in `dir`: every `*.toml` file (hidden files
/// and other names are ignored), at most `max_webs`, each read with a size
/// limit and resolved against `system`. Sorted by recipient name.
pub fn read_recipient_webs(
    dir: &Path,
    system: &TrustSettings,
    max_webs: usize,
) -> Result<Vec<RecipientWeb>, ConfigError> {
    let files = list_files(dir, "toml", max_webs).map_err(ConfigError::Read)?;
    if files.len() > max_webs {
        return Err(ConfigError::TooManyRecipients {
            directory: dir.display().to_string(),
            bound: max_webs,
        });
    }
    let mut named = files
        .into_iter()
        .map(|f| Ok((recipient_of(&f)?, f)))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    named.sort_by(|a, b| (a.0.name(), &a.1).cmp(&(b.0.name(), &b.1)));
    if let Some(w) = named.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ConfigError::DuplicateRecipient {
            recipient: w[0].0.to_string(),
            first: w[0].1.display().to_string(),
            second: w[1].1.display().to_string(),
        });
    }
    named
        .into_iter()
        .map(|(_, f)| {
            let text = read_text(&f, RECIPIENT_FILE).map_err(ConfigError::Read)?;
            RecipientWeb::parse(&f, &text, system)
        })
        .collect()
}

/// The names a recipient address is looked up under, in order: the address
/// itself, the address without its `+extension` (`alice+lists@` is
/// alice's), then its domain (not a parent domain); lowercased. Empty for
/// something that is not an address. The configuration and the policy
/// server both decide with it.
pub fn lookup_names(address: &str) -> Vec<String> {
    let address = address.trim().to_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Vec::new();
    };
    let mut names = vec![address.clone()];
    if let Some((base, _)) = local.split_once('+') {
        names.push(format!("{base}@{domain}"));
    }
    names.push(domain.to_string());
    names
}

/// The web for `address` among `webs` (sorted by name), by [`lookup_names`];
/// `None`: the system default.
pub(super) fn web_for<'a>(webs: &'a [RecipientWeb], address: &str) -> Option<&'a RecipientWeb> {
    lookup_names(address).iter().find_map(|name| {
        webs.binary_search_by(|w| w.recipient.name().cmp(name))
            .ok()
            .map(|i| &webs[i])
    })
}

#[cfg(test)]
mod tests;
