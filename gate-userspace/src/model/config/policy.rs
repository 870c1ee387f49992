//! `[policy]`: the Postfix policy server (inside `wotgate run` when enabled,
//! or alone with `wotgate policy`): sockets, verdict options, limits.

use super::{bad, duration};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::model::settings::SettingsError;

/// Default `[policy] socket`: inside Debian's Postfix queue directory, so
/// the chrooted smtpd reaches it as `unix:private/wotgate`.
pub const DEFAULT_POLICY_SOCKET: &str = "/var/spool/postfix/private/wotgate";
/// Default `[policy] max_state_age`: four missed refreshes at the default interval.
pub const DEFAULT_MAX_STATE_AGE: Duration = Duration::from_secs(60 * 60);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    enabled: Option<bool>,
    socket: Option<PathBuf>,
    socket_owner: Option<String>,
    socket_group: Option<String>,
    socket_mode: Option<String>,
    tcp_listen: Option<String>,
    authserv_id: Option<String>,
    mode: Option<String>,
    header_name: Option<String>,
    max_state_age: Option<String>,
    sender_alignment: Option<bool>,
    helo_alignment: Option<bool>,
    tls_aead: Option<String>,
    policy_url: Option<String>,
    max_request_bytes: Option<usize>,
    max_attributes: Option<usize>,
    max_connections: Option<usize>,
    request_timeout: Option<String>,
    idle_timeout: Option<String>,
    write_timeout: Option<String>,
}

/// `enforce` rejects failures; `observe` labels them in the header and lets
/// the mail through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyMode {
    #[default]
    Enforce,
    Observe,
}

/// When the TLS policy (TLS 1.2 or 1.3 with AEAD ciphers only) applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsAead {
    /// For clients whose statement lists TLS keys (the default).
    #[default]
    Auto,
    /// For every gated client.
    Always,
    Never,
}

/// The validated `[policy]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySection {
    /// Serve it inside `wotgate run`.
    pub enabled: bool,
    /// The UNIX socket; `None` when `socket = ""` (TCP only).
    pub socket: Option<PathBuf>,
    /// User and group the socket is given to (default user postfix);
    /// `None`: left as created.
    pub socket_owner: Option<String>,
    pub socket_group: Option<String>,
    pub socket_mode: u32,
    /// Loopback TCP listener, if any.
    pub tcp_listen: Option<SocketAddr>,
    /// RFC 8601 authserv-id; `None`: the host name at start.
    pub authserv_id: Option<String>,
    pub mode: PolicyMode,
    /// The header field PREPENDed (see README: the forged-header recipe).
    pub header_name: String,
    pub max_state_age: Duration,
    pub sender_alignment: bool,
    pub helo_alignment: bool,
    pub tls_aead: TlsAead,
    /// Where a rejected peer's admin reads the policy (named in rejections).
    pub policy_url: Option<String>,
    pub max_request_bytes: usize,
    pub max_attributes: usize,
    pub max_connections: usize,
    /// A started request must be complete within this.
    pub request_timeout: Duration,
    /// A connection with no request under way is closed after this.
    pub idle_timeout: Duration,
    /// A reply the client does not read within this closes the connection.
    pub write_timeout: Duration,
}

impl Default for PolicySection {
    fn default() -> Self {
        RawPolicy::default()
            .validate(PathBuf::from)
            .expect("the defaults are valid")
    }
}

/// An RFC 8601 authserv-id we write as a bare token: a host name.
pub fn check_authserv_id(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !s.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err("not a host name like mx.example.org (letters, digits, '.', '-')".into())
    }
}

/// A header field name: printable ASCII without ':' or blanks (RFC 5322).
fn check_header_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 76 || !s.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err("not a header field name like Authentication-Results".into());
    }
    Ok(())
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

impl RawPolicy {
    pub(super) fn validate(
        self,
        abs: impl Fn(PathBuf) -> PathBuf,
    ) -> Result<PolicySection, SettingsError> {
        let socket = match self.socket {
            None => Some(PathBuf::from(DEFAULT_POLICY_SOCKET)),
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(abs(p)),
        };
        let mode_text = self.socket_mode.unwrap_or_else(|| "0660".into());
        let socket_mode = u32::from_str_radix(&mode_text, 8)
            .ok()
            .filter(|m| *m <= 0o777 && mode_text.len() <= 4)
            .ok_or_else(|| {
                bad(
                    "policy.socket_mode",
                    &mode_text,
                    "not an octal mode like \"0660\"",
                )
            })?;
        let tcp_listen = match non_empty(self.tcp_listen) {
            None => None,
            Some(t) => {
                let a: SocketAddr = t.parse().map_err(|_| {
                    bad("policy.tcp_listen", &t, "not an address and port like 127.0.0.1:10040 or [::1]:10040 (\"\" turns it off)")
                })?;
                if !a.ip().is_loopback() {
                    return Err(bad(
                        "policy.tcp_listen",
                        &t,
                        "only loopback addresses: the policy protocol has no authentication",
                    ));
                }
                Some(a)
            }
        };
        if socket.is_none() && tcp_listen.is_none() {
            return Err(bad(
                "policy.socket",
                &"",
                "with no policy.tcp_listen either, the server would listen nowhere",
            ));
        }
        let authserv_id = non_empty(self.authserv_id);
        if let Some(id) = &authserv_id {
            check_authserv_id(id).map_err(|p| bad("policy.authserv_id", id, p))?;
        }
        let mode = match self.mode.as_deref() {
            None | Some("enforce") => PolicyMode::Enforce,
            Some("observe") => PolicyMode::Observe,
            Some(m) => {
                return Err(bad(
                    "policy.mode",
                    &m,
                    "expected \"enforce\" or \"observe\"",
                ))
            }
        };
        let header_name = self
            .header_name
            .unwrap_or_else(|| "Authentication-Results".into());
        check_header_name(&header_name).map_err(|p| bad("policy.header_name", &header_name, p))?;
        let tls_aead = match self.tls_aead.as_deref() {
            None | Some("auto") => TlsAead::Auto,
            Some("always") => TlsAead::Always,
            Some("never") => TlsAead::Never,
            Some(m) => {
                return Err(bad(
                    "policy.tls_aead",
                    &m,
                    "expected \"auto\", \"always\" or \"never\"",
                ))
            }
        };
        let policy_url = non_empty(self.policy_url);
        if let Some(u) = &policy_url {
            if u.len() > 200 || !u.bytes().all(|b| (33..=126).contains(&b)) {
                return Err(bad(
                    "policy.policy_url",
                    u,
                    "printable ASCII without blanks, at most 200 bytes",
                ));
            }
        }
        let range = |key, v: Option<usize>, default: usize, min: usize, max: usize| match v {
            None => Ok(default),
            Some(n) if (min..=max).contains(&n) => Ok(n),
            Some(n) => Err(bad(key, &n, format!("must be between {min} and {max}"))),
        };
        Ok(PolicySection {
            enabled: self.enabled.unwrap_or(false),
            socket,
            socket_owner: match self.socket_owner {
                None => Some("postfix".into()),
                given => non_empty(given),
            },
            socket_group: non_empty(self.socket_group),
            socket_mode,
            tcp_listen,
            authserv_id,
            mode,
            header_name,
            max_state_age: duration(
                "policy.max_state_age",
                &self.max_state_age,
                DEFAULT_MAX_STATE_AGE,
            )?,
            sender_alignment: self.sender_alignment.unwrap_or(false),
            helo_alignment: self.helo_alignment.unwrap_or(false),
            tls_aead,
            policy_url,
            max_request_bytes: range(
                "policy.max_request_bytes",
                self.max_request_bytes,
                16_384,
                512,
                1 << 20,
            )?,
            max_attributes: range("policy.max_attributes", self.max_attributes, 64, 8, 1024)?,
            max_connections: range(
                "policy.max_connections",
                self.max_connections,
                10_000,
                1,
                1_000_000,
            )?,
            request_timeout: duration(
                "policy.request_timeout",
                &self.request_timeout,
                Duration::from_secs(10),
            )?,
            idle_timeout: duration(
                "policy.idle_timeout",
                &self.idle_timeout,
                Duration::from_secs(600),
            )?,
            write_timeout: duration(
                "policy.write_timeout",
                &self.write_timeout,
                Duration::from_secs(10),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<PolicySection, SettingsError> {
        let raw: RawPolicy = toml::from_str(t).unwrap();
        raw.validate(|p| PathBuf::from("/etc/wotgate").join(p))
    }

    #[test]
    fn defaults() {
        let p = parse("").unwrap();
        assert!(!p.enabled);
        assert_eq!(p.socket, Some(PathBuf::from(DEFAULT_POLICY_SOCKET)));
        assert_eq!(
            (p.socket_mode, p.mode, p.tls_aead),
            (0o660, PolicyMode::Enforce, TlsAead::Auto)
        );
        assert_eq!(p.header_name, "Authentication-Results");
        assert!(!p.sender_alignment && !p.helo_alignment && p.tcp_listen.is_none());
        assert_eq!(p.max_state_age, DEFAULT_MAX_STATE_AGE);
        assert_eq!(p, PolicySection::default());
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            e("mode = \"lenient\""),
            "policy.mode = \"lenient\": expected \"enforce\" or \"observe\""
        );
        assert!(
            e("socket_mode = \"rw\"").starts_with("policy.socket_mode = \"rw\": not an octal mode")
        );
        assert!(e("socket_mode = \"1777\"").starts_with("policy.socket_mode"));
        assert!(e("tcp_listen = \"192.0.2.1:10040\"").contains("only loopback"));
        assert!(e("tcp_listen = \"localhost\"").starts_with("policy.tcp_listen = \"localhost\""));
        assert!(e("socket = \"\"").starts_with("policy.socket = \"\": with no policy.tcp_listen"));
        assert!(
            e("authserv_id = \"mx example\"").starts_with("policy.authserv_id = \"mx example\"")
        );
        assert!(e("header_name = \"A-R:\"").starts_with("policy.header_name"));
        assert!(e("tls_aead = \"yes\"").starts_with("policy.tls_aead = \"yes\""));
        assert!(e("max_attributes = 2").starts_with("policy.max_attributes = 2: must be between 8"));
        assert!(e("request_timeout = \"soon\"")
            .starts_with("policy.request_timeout = \"soon\": not a duration"));
        let p = parse("socket = \"run/wg.sock\"\ntcp_listen = \"[::1]:10040\"\nmode = \"observe\"")
            .unwrap();
        assert_eq!(p.socket, Some(PathBuf::from("/etc/wotgate/run/wg.sock")));
        assert_eq!(p.mode, PolicyMode::Observe);
    }
}
