//! The controller daemon as a real process fetching the web of trust from
//! the participants themselves: an HTTPS namespace (one address per
//! participant domain, port 443, a certificate per domain from a test CA
//! given to the daemon as `[sources] extra_ca_file`) serves WKD (advanced
//! method), statements and published certifications; the daemon runs in the
//! MX namespace with a mount namespace of its own whose private /etc/hosts
//! sends the participant names to the HTTPS namespace (the host's files are
//! never touched). Real TCP from a client namespace decides.
//!
//! ```text
//!   ours (root, mx.example; the only key in the local keyring)
//!    ├─> alpha.example 2001:db8:a::/48  configured participant; ours' certification in its WKD
//!    │    ├─> beta.example 2001:db8:b::/48   only in alpha's certified.pgp (beta has no WKD)
//!    │    └─> gamma.example 2001:db8:c::/48  certified later, then revoked
//!    └─> delta.example 2001:db8:d::/48  configured participant; statement valid for 40 s
//!   eve.example 2001:db8:e::/48        nobody vouches for it
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use integration_tests::{
    daemon::{loaded_count, status, wotgate, Cleanup, DaemonProc},
    https::{HttpsServer, TestCa},
    netns::{connect, sh, Listener, NetNs, Pair},
    require_kernel, unique,
    world::{certify, key, keyring_bytes, revoke_certification, signed_statement},
    wotgate_bin,
};
use sequoia_openpgp::Cert;
use serde_json::Value;

const SERVER: &str = "[2001:db8:ffff::1]:25";

/// Starts `wotgate run` in `ns` with `hosts` and `resolv` bind-mounted over
/// /etc/hosts and /etc/resolv.conf in a mount namespace of its own.
fn start_daemon(ns: &NetNs, hosts: &Path, resolv: &Path, config: &Path, log: &Path) -> DaemonProc {
    let setup = format!(
        "mount --bind '{}' /etc/hosts; mount --bind '{}' /etc/resolv.conf",
        hosts.display(),
        resolv.display()
    );
    DaemonProc::start_with_mounts(ns, config, log, Some(&setup))
}

/// Everything a scenario needs to act and to explain a failure.
struct Env {
    pair: Pair,
    config: PathBuf,
    log: PathBuf,
    web: HttpsServer,
}

impl Env {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `status` until `cond` holds (at most 30 s).
    fn wait_status(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let v = status(&self.pair.server, &self.config);
            if cond(&v) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "waiting for {what}; last status {v:#}\ndaemon log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `wotgate reload` (SIGHUP to the daemon), then waits until the status
    /// counts one more loaded refresh, by SIGHUP. (`wotgate reload` alone
    /// can return on an earlier SIGHUP refresh recorded in the same second:
    /// its wait compares whole seconds.)
    fn reload(&self) -> Value {
        let before = loaded_count(&status(&self.pair.server, &self.config));
        let out = wotgate(
            &self.pair.server,
            &["reload", "--config", self.config.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "reload: {}{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        let v = self.wait_status("the reload's refresh", |v| loaded_count(v) > before);
        assert_eq!(v["status"]["last_refresh"]["trigger"], "sighup", "{v:#}");
        assert_eq!(
            loaded_count(&v),
            before + 1,
            "{v:#}\ndaemon log:\n{}",
            self.log_text()
        );
        v
    }

    fn admitted(&self, client: &str) -> bool {
        connect(
            &self.pair.client.name,
            client.parse().unwrap(),
            SERVER.parse::<SocketAddr>().unwrap(),
            Duration::from_millis(1000),
        )
        .is_ok()
    }

    /// Asserts who connects: `(client address, name, expected)`.
    fn expect(&self, when: &str, who: &[(&str, &str, bool)]) {
        for (client, name, want) in who {
            assert_eq!(
                self.admitted(client),
                *want,
                "{when}: {name} ({client}) should {}connect\nrequests: {:#?}\ndaemon log:\n{}",
                if *want { "" } else { "not " },
                self.web.requests(),
                self.log_text()
            );
        }
    }

    /// Whether the HTTPS server saw a request whose `host/path` starts with `prefix`.
    fn requested(&self, prefix: &str) -> bool {
        self.web.requests().iter().any(|r| r.starts_with(prefix))
    }
}

fn fpr(c: &Cert) -> String {
    c.fingerprint().to_hex()
}

/// The config: `depth` and the rest fixed. `max_shrink_percent = 50` (the
/// default, written out): the revocation takes 1 of 4 entries, the expiry
/// 1 of 3, both within it.
fn write_config(path: &Path, root: &str, depth: u8, iface: &str, pin: &Path) {
    std::fs::write(
        path,
        format!(
            "state_directory = \"state\"\n\
             [trust]\nkeyrings = [\"keyring.pgp\"]\nroots = [\"{root}\"]\ndepth = {depth}\n\
             [statements]\ndirectory = \"statements\"\nallow_documentation_prefixes = true\n\
             [load]\nmax_shrink_percent = 50\n\
             [gate]\ninterfaces = [\"{iface}\"]\npin_directory = \"{}\"\n\
             [daemon]\nrefresh_interval = \"1h\"\n\
             [sources]\nparticipants = [\"alpha.example\", \"delta.example\"]\nextra_ca_file = \"ca.pem\"\n\
             [sources.fetch]\ntimeout = \"2s\"\nconnect_timeout = \"1s\"\n\
             [metrics]\nlisten = \"\"\n",
            pin.display()
        ),
    )
    .unwrap();
}

/// `not-after` of a statement body, in Unix seconds.
fn not_after(body: &str) -> SystemTime {
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("not-after: "))
        .expect("a not-after line");
    wotgate::model::time::to_system_time(wotgate::model::time::parse_rfc3339(line).unwrap())
}

#[test]
fn the_daemon_fetches_the_web_of_trust_from_the_participants() {
    require_kernel();
    let bin = wotgate_bin();
    let dir = std::env::temp_dir().join(format!("wotgate-fetch-{}", unique("w")));
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("dfx")));
    let _cleanup = Cleanup {
        pin: pin.clone(),
        dir: Some(dir.clone()),
    };
    std::fs::create_dir_all(dir.join("statements")).unwrap();
    std::fs::create_dir_all(dir.join("www")).unwrap();

    // delta's short-lived statement first: its 40 s start now.
    let now = SystemTime::now();
    let born = now - Duration::from_secs(30 * 86_400);
    let certified = now - Duration::from_secs(29 * 86_400);
    let delta = key("<postmaster@delta.example>", born);
    let delta_statement = signed_statement(
        &bin,
        &dir,
        &delta,
        "delta.example",
        &["2001:db8:d::/48"],
        "40s",
    );
    let delta_expires =
        not_after(&std::fs::read_to_string(dir.join("delta.example.body")).unwrap());

    let ours = key("<postmaster@mx.example>", born);
    let alpha = key("<postmaster@alpha.example>", born);
    let beta = key("<postmaster@beta.example>", born);
    let gamma = key("<postmaster@gamma.example>", born);
    let eve = key("<postmaster@eve.example>", born);
    std::fs::write(dir.join("keyring.pgp"), keyring_bytes(&[&ours])).unwrap();

    // The HTTPS namespace beside the MX one; names to addresses.
    let (a, b, c, d, e) = (
        "2001:db8:a::10",
        "2001:db8:b::10",
        "2001:db8:c::10",
        "2001:db8:d::10",
        "2001:db8:e::10",
    );
    let pair = Pair::new("dfx", &[a, b, c, d, e]);
    let web_ns = NetNs::new(&format!("wgw{}", unique("dfx")));
    let id = unique("f");
    let (mx_if, web_if) = (format!("m{id}"), format!("w{id}"));
    sh(&[
        "ip",
        "link",
        "add",
        &mx_if,
        "netns",
        &pair.server.name,
        "type",
        "veth",
        "peer",
        "name",
        &web_if,
        "netns",
        &web_ns.name,
    ]);
    let domains = [
        ("mx.example", "2001:db8:fffe::100"),
        ("alpha.example", "2001:db8:fffe::a"),
        ("beta.example", "2001:db8:fffe::b"),
        ("gamma.example", "2001:db8:fffe::c"),
        ("delta.example", "2001:db8:fffe::d"),
        ("eve.example", "2001:db8:fffe::e"),
    ];
    pair.server.exec(&[
        "ip",
        "addr",
        "add",
        "2001:db8:fffe::1/64",
        "dev",
        &mx_if,
        "nodad",
    ]);
    for (_, addr) in &domains {
        web_ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            &web_if,
            "nodad",
        ]);
    }
    pair.server.exec(&["ip", "link", "set", &mx_if, "up"]);
    web_ns.exec(&["ip", "link", "set", &web_if, "up"]);
    let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for (name, addr) in &domains {
        hosts.push_str(&format!("{addr} {name} openpgpkey.{name}\n"));
    }
    std::fs::write(dir.join("hosts"), hosts).unwrap();
    // Nothing is resolved through DNS; should anything try, it asks the MX
    // namespace's own loopback, where nobody listens.
    std::fs::write(dir.join("resolv.conf"), "nameserver ::1\n").unwrap();

    let ca = TestCa::new("daemon-fetch");
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let names: Vec<&str> = domains.iter().map(|(n, _)| *n).collect();
    let web = HttpsServer::start(&web_ns.name, 443, &ca, &names, &dir.join("www"));

    // What the participants publish.
    let wkd_url = |domain: &str| {
        wotgate::source::wkd::urls(&format!("postmaster@{domain}"))
            .unwrap()
            .advanced
    };
    let statement = |tsk: &Cert, domain: &str, prefix: &str| {
        signed_statement(&bin, &dir, tsk, domain, &[prefix], "30d")
    };
    let alpha_by_ours = certify(&ours, &alpha, certified);
    let beta_by_alpha = certify(&alpha, &beta, certified);
    let gamma_by_alpha = certify(&alpha, &gamma, certified);
    web.publish_url(&wkd_url("alpha.example"), &keyring_bytes(&[&alpha_by_ours]));
    web.publish_url(
        &wkd_url("delta.example"),
        &keyring_bytes(&[&certify(&ours, &delta, certified)]),
    );
    web.publish_url(&wkd_url("gamma.example"), &keyring_bytes(&[&gamma]));
    web.publish_url(&wkd_url("eve.example"), &keyring_bytes(&[&eve]));
    let statement_path = "/.well-known/wotgate/statement.asc";
    let certified_path = "/.well-known/wotgate/certified.pgp";
    for (tsk, domain, prefix) in [
        (&alpha, "alpha.example", "2001:db8:a::/48"),
        (&beta, "beta.example", "2001:db8:b::/48"),
        (&gamma, "gamma.example", "2001:db8:c::/48"),
        (&eve, "eve.example", "2001:db8:e::/48"),
    ] {
        web.publish(
            domain,
            statement_path,
            statement(tsk, domain, prefix).as_bytes(),
        );
    }
    web.publish("delta.example", statement_path, delta_statement.as_bytes());
    web.publish(
        "alpha.example",
        certified_path,
        &keyring_bytes(&[&beta_by_alpha]),
    );

    let config = dir.join("daemon.toml");
    write_config(&config, &fpr(&ours), 1, &pair.server_if, &pin);
    let log = dir.join("daemon.log");
    let _smtp = Listener::start(&pair.server.name, 25);
    let env = Env {
        pair,
        config,
        log,
        web,
    };
    let mut daemon = start_daemon(
        &env.pair.server,
        &dir.join("hosts"),
        &dir.join("resolv.conf"),
        &env.config,
        &env.log,
    );

    // (1) Depth 1: alpha and delta (configured, certified by ours in their
    // WKD answers) connect; alpha cannot introduce, so its certifications
    // are not fetched and beta is never asked for anything.
    let v = env.wait_status("the first plan", |v| loaded_count(v) >= 1);
    assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
    env.expect(
        "depth 1",
        &[
            (a, "alpha", true),
            (d, "delta", true),
            (b, "beta", false),
            (c, "gamma", false),
            (e, "eve", false),
        ],
    );
    assert!(
        env.requested("openpgpkey.alpha.example/.well-known/openpgpkey/alpha.example/hu/"),
        "the advanced WKD method: {:#?}",
        env.web.requests()
    );
    assert!(env.requested("alpha.example/.well-known/wotgate/statement.asc"));
    assert!(
        !env.requested("alpha.example/.well-known/wotgate/certified.pgp"),
        "{:#?}",
        env.web.requests()
    );
    assert!(
        !env.web
            .requests()
            .iter()
            .any(|r| r.contains("beta.example") || r.contains("gamma.example")),
        "{:#?}",
        env.web.requests()
    );

    // Depth 2 and SIGHUP (the configuration is read again): alpha's
    // certified.pgp introduces beta, whose own certifications are not
    // fetched (beta is at the depth; alpha and delta, at depth 1 now, are).
    write_config(&env.config, &fpr(&ours), 2, &env.pair.server_if, &pin);
    env.web.clear_requests();
    daemon.signal(libc::SIGHUP);
    env.wait_status("the depth-2 refresh", |v| loaded_count(v) >= 2);
    env.expect(
        "depth 2",
        &[
            (a, "alpha", true),
            (b, "beta", true),
            (d, "delta", true),
            (c, "gamma", false),
            (e, "eve", false),
        ],
    );
    assert!(env.requested("alpha.example/.well-known/wotgate/certified.pgp"));
    assert!(env.requested("beta.example/.well-known/wotgate/statement.asc"));
    // `trust explain --config` judges what the daemon judged: beta's key
    // exists only in alpha's fetched certified.pgp (the local keyring holds
    // ours alone), and it is found, trusted at depth 2.
    let out = wotgate(
        &env.pair.server,
        &[
            "trust",
            "explain",
            "--config",
            env.config.to_str().unwrap(),
            "--json",
            "beta.example",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "trust explain: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(found[0]["fingerprint"], fpr(&beta), "{found:#}");
    assert_eq!(found[0]["status"], "trusted", "{found:#}");
    assert_eq!(found[0]["depth"], 2, "{found:#}");
    assert!(
        !env.requested("beta.example/.well-known/wotgate/certified.pgp"),
        "{:#?}",
        env.web.requests()
    );

    // (2) alpha certifies gamma and publishes it (gamma collects the
    // certification in its WKD answer too): a reload admits gamma.
    env.web.publish(
        "alpha.example",
        certified_path,
        &keyring_bytes(&[&beta_by_alpha, &gamma_by_alpha]),
    );
    env.web.publish_url(
        &wkd_url("gamma.example"),
        &keyring_bytes(&[&gamma_by_alpha]),
    );
    env.reload();
    env.expect(
        "gamma certified",
        &[(c, "gamma", true), (a, "alpha", true), (b, "beta", true)],
    );

    // (3) alpha publishes the revocation of that certification (gamma's WKD
    // still carries the certification): a reload removes gamma, 1 of 4
    // entries, within max_shrink_percent = 50.
    let gamma_revoked = revoke_certification(&alpha, &gamma_by_alpha, SystemTime::now());
    env.web.publish(
        "alpha.example",
        certified_path,
        &keyring_bytes(&[&beta_by_alpha, &gamma_revoked]),
    );
    env.reload();
    env.expect(
        "gamma's certification revoked",
        &[
            (c, "gamma", false),
            (a, "alpha", true),
            (b, "beta", true),
            (d, "delta", true),
        ],
    );

    // (4) delta's statement passes its not-after: its prefixes go on time,
    // through the daemon's own expiry refresh, without a reload.
    let v = status(&env.pair.server, &env.config);
    let before = loaded_count(&v);
    // The next refresh is due at the not-after second itself: from then on
    // the statement is expired (valid in [not-before, not-after)).
    assert_eq!(v["status"]["next_refresh_reason"], "expiry", "{v:#}");
    assert_eq!(
        v["status"]["next_refresh_at"].as_u64(),
        Some(wotgate::model::time::to_timestamp(delta_expires)),
        "{v:#}"
    );
    let margin = Duration::from_millis(1500);
    if let Ok(left) = delta_expires.duration_since(SystemTime::now()) {
        if left > margin {
            std::thread::sleep(left - margin);
            env.expect("just before delta's not-after", &[(d, "delta", true)]);
        }
    }
    // Gone within 2 s of its not-after (the refresh runs at that second).
    let end = delta_expires + Duration::from_secs(2);
    loop {
        let checked = SystemTime::now();
        if !env.admitted(d) {
            break;
        }
        assert!(
            checked < end,
            "delta still connects 2 s after its statement's not-after\ndaemon log:\n{}",
            env.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = status(&env.pair.server, &env.config);
    assert_eq!(v["status"]["last_refresh"]["trigger"], "expiry", "{v:#}");
    assert_eq!(
        loaded_count(&v),
        before + 1,
        "one refresh, by expiry: {v:#}"
    );
    assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
    env.expect(
        "after delta's expiry",
        &[(a, "alpha", true), (b, "beta", true), (c, "gamma", false)],
    );

    // (5) The HTTPS server stops answering (connections accepted, never a
    // TLS handshake): the refresh falls back to the cached copies, the set
    // stays and trusted peers keep connecting.
    env.web.stop_answering();
    env.web.clear_requests();
    env.reload();
    let log_text = env.log_text();
    assert!(
        log_text.contains("using the copy fetched at"),
        "the cached copies are used: {log_text}"
    );
    env.expect(
        "the HTTPS server silent",
        &[
            (a, "alpha", true),
            (b, "beta", true),
            (c, "gamma", false),
            (d, "delta", false),
            (e, "eve", false),
        ],
    );
    // And unreachable (the MX side of the link down): the same.
    env.pair.server.exec(&["ip", "link", "set", &mx_if, "down"]);
    env.reload();
    env.expect(
        "the HTTPS namespace unreachable",
        &[(a, "alpha", true), (b, "beta", true), (e, "eve", false)],
    );

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(10)).is_some());
}
