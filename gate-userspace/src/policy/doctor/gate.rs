//! `wotgate doctor`'s gate check: the gate attached, in native mode, on every
//! interface that carries an address Postfix listens on (`inet_interfaces`).
//!
//! Pure: the caller passes Postfix's `inet_interfaces`, the host's interfaces
//! with their addresses, and the pinned gate's attachments.

use std::net::{IpAddr, Ipv6Addr};

use crate::gate::attach::Attachment;
use crate::model::config::Config;
use crate::model::settings::XdpMode;

use super::Finding;

const CHECK: &str = "gate-attached";

/// One interface of this host and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInterface {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

/// An address an MX on the Internet is reached at: IPv6, not loopback,
/// not link-local, not unspecified (the gate protects IPv6 peers only).
fn public_v6(a: &IpAddr) -> Option<Ipv6Addr> {
    match a {
        IpAddr::V6(v6)
            if !v6.is_loopback()
                && !v6.is_unspecified()
                && (v6.segments()[0] & 0xffc0) != 0xfe80 =>
        {
            Some(*v6)
        }
        _ => None,
    }
}

/// The interfaces carrying an IPv6 address smtpd listens on, each with
/// those addresses; or why that cannot be said.
fn mx_interfaces(
    inet_interfaces: &str,
    host: &[HostInterface],
) -> Result<Vec<(String, Vec<Ipv6Addr>)>, String> {
    let words: Vec<&str> = inet_interfaces
        .split([',', ' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect();
    let all = words.is_empty() || words.contains(&"all");
    if words == ["loopback-only"] {
        return Err("inet_interfaces = loopback-only: smtpd does not listen on the network".into());
    }
    let mut wanted: Vec<Ipv6Addr> = Vec::new();
    if !all {
        for w in &words {
            let bare = w.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<IpAddr>() {
                Ok(a) => wanted.extend(public_v6(&a)),
                Err(_) => {
                    return Err(format!(
                        "inet_interfaces names {w:?}, not an address: list the MX addresses (or all) so the interface can be found"
                    ))
                }
            }
        }
    }
    let mut out = Vec::new();
    for i in host {
        let addrs: Vec<Ipv6Addr> = i
            .addresses
            .iter()
            .filter_map(public_v6)
            .filter(|a| all || wanted.contains(a))
            .collect();
        if !addrs.is_empty() {
            out.push((i.name.clone(), addrs));
        }
    }
    if out.is_empty() {
        return Err(if all {
            "no interface of this host has a global IPv6 address for smtpd (inet_interfaces = all)"
                .into()
        } else {
            format!("no interface of this host carries an IPv6 address of inet_interfaces = {inet_interfaces}")
        });
    }
    Ok(out)
}

/// One finding per interface that carries an MX address (or one saying why
/// none was found, or that this host has no gate to check).
pub fn diagnose_gate(
    cfg: &Config,
    inet_interfaces: &str,
    host: &[HostInterface],
    attachments: Result<&[Attachment], &str>,
) -> Vec<Finding> {
    let fix = |detail: String, line: String| Finding {
        check: CHECK,
        ok: false,
        detail,
        fix: Some(line),
    };
    let ok = |detail: String| Finding {
        check: CHECK,
        ok: true,
        detail,
        fix: None,
    };
    if cfg.gate.interfaces.is_empty() {
        return vec![ok(
            "no [gate] interfaces: a policy-only host (wotgate policy), no gate to check".into(),
        )];
    }
    let mx = match mx_interfaces(inet_interfaces, host) {
        Ok(m) => m,
        Err(e) => {
            return vec![fix(
                e,
                "main.cf: inet_interfaces = all (or the MX's IPv6 addresses)".into(),
            )]
        }
    };
    let attachments = match attachments {
        Ok(a) => a,
        Err(e) => {
            return vec![fix(
            format!(
                "no gate pinned at {}: {e}",
                cfg.gate.pin_directory.display()
            ),
            "start the daemon: systemctl enable --now wotgate (it attaches to [gate] interfaces)"
                .into(),
        )]
        }
    };
    let mut out = Vec::new();
    for (iface, addrs) in mx {
        let shown = addrs
            .iter()
            .map(Ipv6Addr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let here = attachments
            .iter()
            .find(|a| a.iface == iface && a.live && a.attached());
        out.push(match here {
            Some(a) if a.mode == XdpMode::Native => ok(format!(
                "attached in native mode on {iface}, which carries {shown}"
            )),
            Some(_) => fix(
                format!("attached on {iface} ({shown}) in generic (skb) mode: every packet pays for an skb before the gate drops it"),
                "wotgate.toml: [gate] xdp_mode = \"native\", then systemctl restart wotgate (or the driver lacks native XDP: see README, Requirements)".into(),
            ),
            None if cfg.gate.interfaces.contains(&iface) => fix(
                format!("{iface} carries {shown} and is in [gate] interfaces, but the gate is not attached there"),
                "systemctl restart wotgate (the daemon attaches at start; see its log)".into(),
            ),
            None => fix(
                format!("{iface} carries {shown}, where smtpd listens, but the gate is not attached there: SYNs arriving on it are not gated"),
                format!(
                    "wotgate.toml: [gate] interfaces = [{}], then systemctl restart wotgate",
                    cfg.gate
                        .interfaces
                        .iter()
                        .map(String::as_str)
                        .chain([iface.as_str()])
                        .map(|i| format!("\"{i}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(interfaces: &[&str]) -> Config {
        let list = interfaces
            .iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Config::parse(
            &format!(
                "[trust]\nkeyrings = [\"k.pgp\"]\nroots = [\"0123456789ABCDEF0123456789ABCDEF01234567\"]\n[gate]\ninterfaces = [{list}]\n"
            ),
            "wotgate.toml",
            std::path::Path::new("/etc/wotgate"),
        )
        .unwrap()
    }

    fn host() -> Vec<HostInterface> {
        let i = |n: &str, a: &[&str]| HostInterface {
            name: n.into(),
            addresses: a.iter().map(|a| a.parse().unwrap()).collect(),
        };
        vec![
            i("lo", &["127.0.0.1", "::1"]),
            i("eth0", &["192.0.2.25", "fe80::1", "2001:db8:ffff::25"]),
            i("eth1", &["fe80::2", "2001:db8:eeee::25"]),
            i("eth2", &["192.0.2.26"]),
        ]
    }

    fn att(iface: &str, mode: XdpMode) -> Attachment {
        Attachment {
            iface: iface.into(),
            mode,
            link_id: Some(1),
            program_id: Some(2),
            ifindex: Some(3),
            live: true,
        }
    }

    fn verdicts(f: &[Finding]) -> Vec<(bool, String)> {
        f.iter().map(|f| (f.ok, f.detail.clone())).collect()
    }

    #[test]
    fn native_on_the_mx_interface_is_ok() {
        let a = [att("eth0", XdpMode::Native)];
        let f = diagnose_gate(&cfg(&["eth0"]), "2001:db8:ffff::25", &host(), Ok(&a));
        assert_eq!(f.len(), 1);
        assert!(f[0].ok, "{f:?}");
        assert!(f[0].detail.contains("eth0") && f[0].detail.contains("2001:db8:ffff::25"));
        // Brackets, as Postfix writes IPv6 in inet_interfaces.
        let f = diagnose_gate(
            &cfg(&["eth0"]),
            "127.0.0.1, [2001:db8:ffff::25]",
            &host(),
            Ok(&a),
        );
        assert!(f[0].ok, "{f:?}");
    }

    #[test]
    fn generic_mode_and_missing_interfaces_are_named_with_the_fix() {
        let a = [att("eth0", XdpMode::Skb)];
        let f = diagnose_gate(&cfg(&["eth0"]), "all", &host(), Ok(&a));
        // all: eth0 and eth1 carry global IPv6 addresses; eth2 only IPv4.
        assert_eq!(f.len(), 2, "{:?}", verdicts(&f));
        assert!(!f[0].ok && f[0].detail.contains("skb"), "{f:?}");
        assert!(f[0].fix.as_ref().unwrap().contains("xdp_mode = \"native\""));
        assert!(!f[1].ok && f[1].detail.starts_with("eth1 carries 2001:db8:eeee::25"));
        assert!(f[1]
            .fix
            .as_ref()
            .unwrap()
            .contains("interfaces = [\"eth0\", \"eth1\"]"));
        // Configured but not attached (the daemon failed to attach).
        let f = diagnose_gate(&cfg(&["eth0"]), "all", &host(), Ok(&[]));
        assert!(
            !f[0].ok && f[0].detail.contains("in [gate] interfaces"),
            "{f:?}"
        );
        // A link whose interface is gone does not count.
        let gone = Attachment {
            live: false,
            ..att("eth0", XdpMode::Native)
        };
        let f = diagnose_gate(&cfg(&["eth0"]), "2001:db8:ffff::25", &host(), Ok(&[gone]));
        assert!(!f[0].ok, "{f:?}");
    }

    #[test]
    fn no_gate_no_address_and_policy_only_hosts() {
        let f = diagnose_gate(&cfg(&["eth0"]), "all", &host(), Err("no such file"));
        assert!(
            !f[0].ok
                && f[0]
                    .detail
                    .starts_with("no gate pinned at /sys/fs/bpf/wotgate")
        );
        let f = diagnose_gate(&cfg(&["eth0"]), "loopback-only", &host(), Ok(&[]));
        assert!(!f[0].ok && f[0].detail.contains("loopback-only"), "{f:?}");
        let f = diagnose_gate(&cfg(&["eth0"]), "192.0.2.25", &host(), Ok(&[]));
        assert!(!f[0].ok && f[0].detail.contains("no interface"), "{f:?}");
        let f = diagnose_gate(&cfg(&["eth0"]), "mx.example.org", &host(), Ok(&[]));
        assert!(!f[0].ok && f[0].detail.contains("not an address"), "{f:?}");
        let f = diagnose_gate(&cfg(&[]), "all", &host(), Err("no such file"));
        assert!(f[0].ok && f[0].detail.contains("policy-only"), "{f:?}");
    }
}
