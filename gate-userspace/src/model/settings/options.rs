//! Settings as given, before validation (trust options, statement options),
//! and their validation into [`TrustSettings`], [`AcceptRules`] and [`TestingPolicy`].

use std::collections::BTreeSet;
use std::time::SystemTime;

use sequoia_openpgp::Fingerprint;

use super::vocabulary::invalid;
use super::{
    AcceptRules, Key, Limits, SettingsError, TestingPolicy, TrustSettings, Vocabulary, MAX_DEPTH,
    MAX_STATEMENT_BYTES,
};
use crate::model::fingerprint::parse_fingerprint;

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
