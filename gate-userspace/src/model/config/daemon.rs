//! The sections only the controller daemon reads: `[gate]` (interfaces and
//! settings), `[daemon]` (refresh and start-up), `[sources]`, `[metrics]`.

use super::{bad, duration};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv6Net;
use serde::Deserialize;

use crate::model::prefixes::parse_prefix;
use crate::model::settings::{SettingsError, XdpMode};
use crate::source::settings::{CrawlBounds, FetchLimits, SourcesSettings};

/// Default `[gate] pin_directory` (the gate's own default).
pub const DEFAULT_PIN_DIRECTORY: &str = "/sys/fs/bpf/wotgate";
/// Default `[daemon] refresh_interval`.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Default `[daemon] max_plan_age`: four missed refreshes at the default interval.
pub const DEFAULT_MAX_PLAN_AGE: Duration = Duration::from_secs(60 * 60);
/// Default `[metrics] listen`: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9725";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGate {
    /// Interfaces the gate is attached to (the daemon needs at least one).
    interfaces: Option<Vec<String>>,
    /// "native" (default) or "skb".
    xdp_mode: Option<String>,
    /// Protected TCP ports (default [25]).
    ports: Option<Vec<u16>>,
    /// Protected destination prefixes (default: every destination).
    protect: Option<Vec<String>>,
    /// "enforce" (default) or "observe" (count, never drop).
    mode: Option<String>,
    /// Where the gate is pinned in bpffs (default /sys/fs/bpf/wotgate).
    pin_directory: Option<PathBuf>,
    /// The operator's allow/deny overrides, a prefix file merged into every plan.
    static_prefixes: Option<PathBuf>,
    /// Detach from the interfaces when the daemon stops (default false).
    detach_on_stop: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    refresh_interval: Option<String>,
    startup: Option<String>,
    max_plan_age: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSources {
    participants: Option<Vec<String>>,
    extra_ca_file: Option<PathBuf>,
    fetch: Option<RawFetch>,
    crawl: Option<RawCrawl>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    timeout: Option<String>,
    connect_timeout: Option<String>,
    max_response_bytes: Option<u64>,
    max_concurrent: Option<usize>,
    max_redirects: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCrawl {
    enabled: Option<bool>,
    max_participants: Option<usize>,
    max_total_bytes: Option<u64>,
    max_time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: Option<String>,
}

/// `[gate]`: where the gate is and how it is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateSection {
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    pub ports: Vec<u16>,
    /// Empty: every destination is protected.
    pub protect: Vec<Ipv6Net>,
    /// `mode = "observe"`: count, never drop.
    pub observe: bool,
    pub pin_directory: PathBuf,
    pub static_prefixes: Option<PathBuf>,
    pub detach_on_stop: bool,
}

/// What the daemon does at start when it has no usable plan at all (no
/// pinned gate and no last good plan in the state directory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartupPolicy {
    /// Count but never drop until the first good plan is loaded.
    #[default]
    Observe,
    /// Enforce at once with only the static overrides.
    Enforce,
}

/// `[daemon]`: when to refresh, how to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSection {
    pub refresh_interval: Duration,
    pub startup: StartupPolicy,
    /// Readiness fails when the enforced plan is older than this.
    pub max_plan_age: Duration,
}

/// An interface name the kernel could have: 1-15 bytes, no `/`, no blank.
fn check_iface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("an interface name has 1 to 15 characters".into());
    }
    if name.contains('/') || name.contains(char::is_whitespace) || name == "." || name == ".." {
        return Err("not an interface name".into());
    }
    Ok(())
}

/// A participant's mail domain: lower-case DNS labels, at least two.
fn check_domain(d: &str) -> Result<(), String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if d.len() > 253 || d.split('.').count() < 2 || !d.split('.').all(ok_label) {
        return Err("not a lower-case domain name like example.org".into());
    }
    Ok(())
}

impl RawGate {
    pub(super) fn validate(
        self,
        abs: impl Fn(PathBuf) -> PathBuf,
    ) -> Result<GateSection, SettingsError> {
        let interfaces = self.interfaces.unwrap_or_default();
        for i in &interfaces {
            check_iface_name(i).map_err(|p| bad("gate.interfaces", i, p))?;
        }
        if let Some(dup) = interfaces
            .iter()
            .enumerate()
            .find(|(n, i)| interfaces[..*n].contains(i))
        {
            return Err(bad("gate.interfaces", dup.1, "listed twice"));
        }
        let xdp_mode = match &self.xdp_mode {
            None => XdpMode::default(),
            Some(m) => m
                .parse()
                .map_err(|_| bad("gate.xdp_mode", m, "expected \"native\" or \"skb\""))?,
        };
        let ports = self
            .ports
            .unwrap_or_else(|| vec![gate_common::DEFAULT_PORT]);
        if ports.is_empty() || ports.len() > gate_common::MAX_PORTS {
            return Err(bad(
                "gate.ports",
                &ports,
                format!("between 1 and {} ports", gate_common::MAX_PORTS),
            ));
        }
        if ports.contains(&0) {
            return Err(bad("gate.ports", &ports, "port 0 cannot be protected"));
        }
        let mut protect = Vec::new();
        for p in self.protect.unwrap_or_default() {
            protect.push(parse_prefix(&p).map_err(|e| bad("gate.protect", &p, e))?);
        }
        let max = gate_common::PROTECT_MAX_ENTRIES as usize;
        if protect.len() > max {
            return Err(bad(
                "gate.protect",
                &protect.len(),
                format!("at most {max} prefixes"),
            ));
        }
        protect.sort();
        protect.dedup();
        let observe = match self.mode.as_deref() {
            None | Some("enforce") => false,
            Some("observe") => true,
            Some(m) => return Err(bad("gate.mode", &m, "expected \"enforce\" or \"observe\"")),
        };
        Ok(GateSection {
            interfaces,
            xdp_mode,
            ports,
            protect,
            observe,
            pin_directory: abs(self
                .pin_directory
                .unwrap_or_else(|| DEFAULT_PIN_DIRECTORY.into())),
            static_prefixes: self.static_prefixes.map(&abs),
            detach_on_stop: self.detach_on_stop.unwrap_or(false),
        })
    }
}

impl RawDaemon {
    pub(super) fn validate(self) -> Result<DaemonSection, SettingsError> {
        let startup = match self.startup.as_deref() {
            None | Some("observe") => StartupPolicy::Observe,
            Some("enforce") => StartupPolicy::Enforce,
            Some(s) => {
                return Err(bad(
                    "daemon.startup",
                    &s,
                    "expected \"observe\" or \"enforce\"",
                ))
            }
        };
        Ok(DaemonSection {
            refresh_interval: duration(
                "daemon.refresh_interval",
                &self.refresh_interval,
                DEFAULT_REFRESH_INTERVAL,
            )?,
            startup,
            max_plan_age: duration(
                "daemon.max_plan_age",
                &self.max_plan_age,
                DEFAULT_MAX_PLAN_AGE,
            )?,
        })
    }
}

impl RawSources {
    pub(super) fn validate(
        self,
        abs: impl Fn(PathBuf) -> PathBuf,
    ) -> Result<SourcesSettings, SettingsError> {
        let participants = self.participants.unwrap_or_default();
        for d in &participants {
            check_domain(d).map_err(|p| bad("sources.participants", d, p))?;
        }
        let f = self.fetch.unwrap_or_default();
        let df = FetchLimits::default();
        let at_least_one = |key, v: Option<usize>, d: usize| match v {
            Some(0) => Err(bad(key, &0, "must be at least 1")),
            v => Ok(v.unwrap_or(d)),
        };
        let fetch = FetchLimits {
            timeout: duration("sources.fetch.timeout", &f.timeout, df.timeout)?,
            connect_timeout: duration(
                "sources.fetch.connect_timeout",
                &f.connect_timeout,
                df.connect_timeout,
            )?,
            max_response_bytes: match f.max_response_bytes {
                Some(0) => {
                    return Err(bad(
                        "sources.fetch.max_response_bytes",
                        &0,
                        "must be at least 1",
                    ))
                }
                v => v.unwrap_or(df.max_response_bytes),
            },
            max_concurrent: at_least_one(
                "sources.fetch.max_concurrent",
                f.max_concurrent,
                df.max_concurrent,
            )?,
            max_redirects: f.max_redirects.unwrap_or(df.max_redirects),
        };
        let c = self.crawl.unwrap_or_default();
        let dc = CrawlBounds::default();
        let crawl = CrawlBounds {
            enabled: c.enabled.unwrap_or(dc.enabled),
            max_participants: at_least_one(
                "sources.crawl.max_participants",
                c.max_participants,
                dc.max_participants,
            )?,
            max_total_bytes: match c.max_total_bytes {
                Some(0) => {
                    return Err(bad(
                        "sources.crawl.max_total_bytes",
                        &0,
                        "must be at least 1",
                    ))
                }
                v => v.unwrap_or(dc.max_total_bytes),
            },
            max_time: duration("sources.crawl.max_time", &c.max_time, dc.max_time)?,
        };
        Ok(SourcesSettings {
            participants,
            fetch,
            crawl,
            extra_ca_file: self.extra_ca_file.map(abs),
        })
    }
}

impl RawMetrics {
    /// The listen address; `None` when `listen = ""` turns the endpoint off.
    pub(super) fn validate(self) -> Result<Option<SocketAddr>, SettingsError> {
        let listen = self.listen.unwrap_or_else(|| DEFAULT_METRICS_LISTEN.into());
        if listen.is_empty() {
            return Ok(None);
        }
        listen
            .parse()
            .map(Some)
            .map_err(|_| bad("metrics.listen", &listen, "not an address and port like 127.0.0.1:9725 or [::1]:9725 (\"\" turns metrics off)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(toml: &str) -> Result<GateSection, SettingsError> {
        let raw: RawGate = toml::from_str(toml).unwrap();
        raw.validate(|p| PathBuf::from("/etc/wotgate").join(p))
    }

    #[test]
    fn gate_defaults_and_errors() {
        let g = gate("").unwrap();
        assert_eq!(
            (g.ports.as_slice(), g.observe, g.xdp_mode),
            (&[25][..], false, XdpMode::Native)
        );
        assert_eq!(g.pin_directory, PathBuf::from(DEFAULT_PIN_DIRECTORY));
        assert!(!g.detach_on_stop && g.interfaces.is_empty() && g.static_prefixes.is_none());
        let g =
            gate("static_prefixes = \"static.prefixes\"\nmode = \"observe\"\nxdp_mode = \"skb\"")
                .unwrap();
        assert_eq!(
            g.static_prefixes,
            Some(PathBuf::from("/etc/wotgate/static.prefixes"))
        );
        assert!(g.observe);
        let e = |t: &str| gate(t).unwrap_err().to_string();
        assert_eq!(
            e("xdp_mode = \"fast\""),
            "gate.xdp_mode = \"fast\": expected \"native\" or \"skb\""
        );
        assert_eq!(
            e("mode = \"drop\""),
            "gate.mode = \"drop\": expected \"enforce\" or \"observe\""
        );
        assert_eq!(
            e("ports = [25, 0]"),
            "gate.ports = [25, 0]: port 0 cannot be protected"
        );
        assert!(e("ports = []").starts_with("gate.ports = []: between 1 and 8"));
        assert!(
            e("protect = [\"2001:db8::1/64\"]").starts_with("gate.protect = \"2001:db8::1/64\"")
        );
        assert!(e("interfaces = [\"a-very-long-interface\"]")
            .starts_with("gate.interfaces = \"a-very-long-interface\""));
        assert!(e("interfaces = [\"eth0\", \"eth0\"]").contains("listed twice"));
    }

    #[test]
    fn daemon_sources_metrics() {
        let d: RawDaemon =
            toml::from_str("refresh_interval = \"5m\"\nstartup = \"enforce\"").unwrap();
        let d = d.validate().unwrap();
        assert_eq!(
            (d.refresh_interval, d.startup),
            (Duration::from_secs(300), StartupPolicy::Enforce)
        );
        let d: RawDaemon = toml::from_str("refresh_interval = \"soon\"").unwrap();
        assert_eq!(
            d.validate().unwrap_err().to_string(),
            "daemon.refresh_interval = \"soon\": not a duration like 90d, 12h, 30m, 3600s or 2w"
        );
        let s: RawSources = toml::from_str("participants = [\"Example.org\"]").unwrap();
        assert!(s
            .validate(PathBuf::from)
            .unwrap_err()
            .to_string()
            .starts_with("sources.participants = \"Example.org\""));
        let s: RawSources = toml::from_str("[fetch]\nmax_concurrent = 0").unwrap();
        assert!(s
            .validate(PathBuf::from)
            .unwrap_err()
            .to_string()
            .starts_with("sources.fetch.max_concurrent = 0"));
        let s: RawSources =
            toml::from_str("participants = [\"example.org\"]\n[crawl]\nmax_time = \"2m\"").unwrap();
        let s = s.validate(PathBuf::from).unwrap();
        assert_eq!(
            (s.participants.len(), s.crawl.max_time),
            (1, Duration::from_secs(120))
        );
        let m = |t: &str| toml::from_str::<RawMetrics>(t).unwrap().validate();
        assert_eq!(
            m("").unwrap(),
            Some(DEFAULT_METRICS_LISTEN.parse().unwrap())
        );
        assert_eq!(m("listen = \"\"").unwrap(), None);
        assert!(m("listen = \"localhost\"")
            .unwrap_err()
            .to_string()
            .starts_with("metrics.listen = \"localhost\""));
    }
}
