//! Fetch faults at the daemon level: the real `wotgate run` fetching one participant over
//! HTTPS in namespaces while its server misbehaves; each time the cached copy keeps the set.

// The participants:
//
//   ours (root, mx.example; the only key in the local keyring)
//    └─> alpha.example 2001:db8:a::/48  configured participant: its WKD answer
//                                       carries ours' certification, its statement
//   beta.example                        certified by ours too, but only ever
//                                       served from alpha's WKD (the wrong domain)
//
// Faults, one at a time, each followed by SIGHUP: a garbage statement, a
// garbage WKD answer, an endless body, a redirect loop, a certificate from
// a CA the daemon does not trust, a server that never answers, and a WKD
// answer with another domain's key. Each must be logged with the URL and
// the reason, counted for its source, and leave the set and the trusted
// peer's connections as they were.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::{Duration, SystemTime},
};

use integration_tests::{
    daemon::{
        kernel_set, loaded_count, log_len, log_since, record_with, refreshes, scrape, value,
        wait_scrape, Cleanup, DaemonProc, METRICS,
    },
    https::{Fault, HttpsServer, TestCa},
    netns::{connect, sh, Listener, NetNs, Pair},
    require_kernel, unique,
    world::{certify, key, keyring_bytes, signed_statement},
    wotgate_bin,
};
use serde_json::Value;

const SERVER: &str = "[2001:db8:ffff::1]:25";
const ALPHA: &str = "2001:db8:a::10";
const EVE: &str = "2001:db8:e::10";
const CAP: u64 = 65_536;
const STATEMENT_PATH: &str = "/.well-known/wotgate/statement.asc";
const STATEMENT_URL: &str = "https://alpha.example/.well-known/wotgate/statement.asc";

/// The daemon first, so it stops before its namespaces go.
struct Env {
    d: Option<DaemonProc>,
    pair: Pair,
    config: PathBuf,
    log: PathBuf,
    web: HttpsServer,
}

impl Env {
    fn d(&self) -> &DaemonProc {
        self.d.as_ref().expect("the daemon runs")
    }

    fn ns(&self) -> &str {
        &self.pair.server.name
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status(&self) -> Value {
        self.d().status(&self.config)
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

    fn expect_peers(&self, when: &str) {
        for (client, name, want) in [(ALPHA, "alpha", true), (EVE, "eve", false)] {
            assert_eq!(
                self.admitted(client),
                want,
                "{when}: {name} ({client}) should {}connect\nrequests: {:#?}\ndaemon log:\n{}",
                if want { "" } else { "not " },
                self.web.requests(),
                self.log_text()
            );
        }
    }

    /// SIGHUP, then waits until the metrics count one more refresh.
    fn sighup(&self) -> String {
        let before = refreshes(&scrape(self.ns(), &self.log));
        self.d().signal(libc::SIGHUP);
        wait_scrape(self.ns(), &self.log, "the SIGHUP refresh", |t| {
            refreshes(t) > before
        })
    }
}

fn errors(text: &str, source: &str) -> f64 {
    value(
        text,
        &format!("wotgate_source_fetch_errors_total{{source=\"{source}\"}}"),
    )
    .unwrap_or(0.0)
}

fn write_config(path: &Path, root: &str, iface: &str, pin: &Path) {
    std::fs::write(
        path,
        format!(
            "state_directory = \"state\"\n\
             [trust]\nkeyrings = [\"keyring.pgp\"]\nroots = [\"{root}\"]\ndepth = 1\n\
             [statements]\ndirectory = \"statements\"\nallow_documentation_prefixes = true\n\
             [gate]\ninterfaces = [\"{iface}\"]\npin_directory = \"{}\"\n\
             [daemon]\nrefresh_interval = \"1h\"\nmax_plan_age = \"2h\"\n\
             [sources]\nparticipants = [\"alpha.example\"]\nextra_ca_file = \"ca.pem\"\n\
             [sources.fetch]\ntimeout = \"2s\"\nconnect_timeout = \"1s\"\nmax_response_bytes = {CAP}\nmax_redirects = 3\n\
             [metrics]\nlisten = \"{METRICS}\"\n",
            pin.display()
        ),
    )
    .unwrap();
}

/// One fault: how to cause it and undo it, which source it hits, what the
/// log must say.
struct Case {
    what: &'static str,
    source: &'static str,
    url: String,
    reason: &'static str,
}

#[test]
fn fetch_faults_are_logged_and_counted_and_the_set_stays() {
    require_kernel();
    let bin = wotgate_bin();
    let dir = std::env::temp_dir().join(format!("wotgate-dfh-{}", unique("w")));
    let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique("dfh")));
    let _cleanup = Cleanup {
        pin: pin.clone(),
        dir: Some(dir.clone()),
    };
    std::fs::create_dir_all(dir.join("statements")).unwrap();
    std::fs::create_dir_all(dir.join("www")).unwrap();

    let now = SystemTime::now();
    let born = now - Duration::from_secs(30 * 86_400);
    let certified = now - Duration::from_secs(29 * 86_400);
    let ours = key("<postmaster@mx.example>", born);
    let alpha = key("<postmaster@alpha.example>", born);
    let beta = key("<postmaster@beta.example>", born);
    std::fs::write(dir.join("keyring.pgp"), keyring_bytes(&[&ours])).unwrap();

    // The MX and client namespaces, and the HTTPS namespace beside the MX.
    let pair = Pair::new("dfh", &[ALPHA, EVE]);
    let web_ns = NetNs::new(&format!("wgw{}", unique("dfh")));
    let id = unique("h");
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
    let web_addr = "2001:db8:fffe::a";
    pair.server.exec(&[
        "ip",
        "addr",
        "add",
        "2001:db8:fffe::1/64",
        "dev",
        &mx_if,
        "nodad",
    ]);
    web_ns.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{web_addr}/64"),
        "dev",
        &web_if,
        "nodad",
    ]);
    pair.server.exec(&["ip", "link", "set", &mx_if, "up"]);
    web_ns.exec(&["ip", "link", "set", &web_if, "up"]);
    std::fs::write(
        dir.join("hosts"),
        format!("127.0.0.1 localhost\n::1 localhost\n{web_addr} alpha.example openpgpkey.alpha.example\n"),
    )
    .unwrap();
    std::fs::write(dir.join("resolv.conf"), "nameserver ::1\n").unwrap();

    let ca = TestCa::new("daemon-faults");
    let stranger = TestCa::new("daemon-faults-stranger");
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let web = HttpsServer::start(&web_ns.name, 443, &ca, &["alpha.example"], &dir.join("www"));
    let wkd = wotgate::source::wkd::urls("postmaster@alpha.example").unwrap();
    let good_wkd = keyring_bytes(&[&certify(&ours, &alpha, certified)]);
    let good_statement = signed_statement(
        &bin,
        &dir,
        &alpha,
        "alpha.example",
        &["2001:db8:a::/48"],
        "30d",
    );
    web.publish_url(&wkd.advanced, &good_wkd);
    web.publish("alpha.example", STATEMENT_PATH, good_statement.as_bytes());

    let config = dir.join("daemon.toml");
    write_config(&config, &ours.fingerprint().to_hex(), &pair.server_if, &pin);
    let log = dir.join("daemon.log");
    let _smtp = Listener::start(&pair.server.name, 25);
    let mut env = Env {
        pair,
        config,
        log,
        web,
        d: None,
    };
    env.d = Some(DaemonProc::start_with_mounts(
        &env.pair.server,
        &env.config,
        &env.log,
        Some(&format!(
            "mount --bind '{}' /etc/hosts; mount --bind '{}' /etc/resolv.conf",
            dir.join("hosts").display(),
            dir.join("resolv.conf").display()
        )),
    ));
    let v0 = {
        let end = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let v = env.status();
            if loaded_count(&v) >= 1 && v["kernel_equals_plan"] == true {
                break v;
            }
            assert!(
                std::time::Instant::now() < end,
                "no first plan: {v:#}\n{}",
                env.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(kernel_set(&v0).0, 1, "alpha's /48: {v0:#}");
    wait_scrape(env.ns(), &env.log, "the metrics endpoint", |t| {
        value(t, "wotgate_kernel_matches_plan") == Some(1.0)
    });
    env.expect_peers("before any fault");

    let beta_by_ours = keyring_bytes(&[&certify(&ours, &beta, certified)]);
    let cases = [
        Case {
            what: "a garbage statement",
            source: "alpha.example/statement",
            url: STATEMENT_URL.into(),
            reason: "not a signed statement",
        },
        Case {
            what: "a garbage WKD answer",
            source: "alpha.example/wkd",
            url: wkd.advanced.clone(),
            reason: "not an OpenPGP certificate",
        },
        Case {
            what: "an endless body",
            source: "alpha.example/statement",
            url: STATEMENT_URL.into(),
            reason: "response body larger than 65536 bytes; cut there and not used",
        },
        Case {
            what: "a redirect loop",
            source: "alpha.example/statement",
            url: STATEMENT_URL.into(),
            reason: "more than 3 redirects",
        },
        Case {
            what: "a certificate from an unknown CA",
            source: "alpha.example/statement",
            url: STATEMENT_URL.into(),
            reason: "TLS: invalid peer certificate: UnknownIssuer",
        },
        Case {
            what: "a server that never answers",
            source: "alpha.example/statement",
            url: STATEMENT_URL.into(),
            reason: "timed out after 2s",
        },
        Case {
            what: "a WKD answer with another domain's key",
            source: "alpha.example/wkd",
            url: wkd.advanced.clone(),
            reason: "has no User ID for postmaster@alpha.example",
        },
    ];
    let statement_path = STATEMENT_PATH;
    for c in &cases {
        let cause = |on: bool| match c.what {
            "a garbage statement" => env.web.publish(
                "alpha.example",
                statement_path,
                if on {
                    b"<html>502 Bad Gateway</html>"
                } else {
                    good_statement.as_bytes()
                },
            ),
            "a garbage WKD answer" => env.web.publish_url(
                &wkd.advanced,
                if on {
                    b"<html>502 Bad Gateway</html>"
                } else {
                    &good_wkd
                },
            ),
            "a WKD answer with another domain's key" => env
                .web
                .publish_url(&wkd.advanced, if on { &beta_by_ours } else { &good_wkd }),
            "an endless body" => env.web.fault(
                "alpha.example",
                statement_path,
                on.then_some(Fault::Endless),
            ),
            "a redirect loop" => env.web.fault(
                "alpha.example",
                statement_path,
                on.then_some(Fault::RedirectLoop),
            ),
            "a server that never answers" => {
                env.web
                    .fault("alpha.example", statement_path, on.then_some(Fault::Hang))
            }
            "a certificate from an unknown CA" => env
                .web
                .use_ca("alpha.example", if on { &stranger } else { &ca }),
            other => panic!("no way to cause {other}"),
        };
        let before = scrape(env.ns(), &env.log);
        let mark = log_len(&env.log);
        env.web.clear_requests();
        cause(true);
        let text = env.sighup();
        cause(false);
        let log = log_since(&env.log, mark);
        // (a) the log names the URL and the reason, and the copy used.
        let record =
            record_with(&log, &["fetched source", &c.url, c.reason]).unwrap_or_else(|| {
                panic!(
                    "{}: no log record naming {} and {:?}:\n{log}",
                    c.what, c.url, c.reason
                )
            });
        assert!(record.contains("using the copy fetched at"), "{record}");
        // (b) the source's error counter moved by one.
        assert_eq!(
            errors(&text, c.source),
            errors(&before, c.source) + 1.0,
            "{}: {text}",
            c.what
        );
        assert_eq!(value(&text, "wotgate_last_refresh_successful"), Some(1.0));
        assert_eq!(value(&text, "wotgate_kernel_matches_plan"), Some(1.0));
        // (c) the set stays.
        let v = env.status();
        assert_eq!(kernel_set(&v), kernel_set(&v0), "{}: {v:#}", c.what);
        assert_eq!(v["kernel_equals_plan"], true, "{}: {v:#}", c.what);
        // (d) the trusted peer still connects, the stranger does not.
        env.expect_peers(c.what);
    }

    // The endless body cost the server at most the cap plus what the
    // sockets buffer: the daemon cut it and closed the connection.
    let endless = env.web.endless();
    let written = endless.written.load(Ordering::SeqCst);
    assert_eq!(endless.finished.load(Ordering::SeqCst), 0);
    assert!(endless.cut_by_client.load(Ordering::SeqCst) >= 1);
    assert!(
        written < 32 << 20,
        "the server wrote {written} bytes of the endless body"
    );

    // Everything healthy again: no new error, both sources fetched.
    let before = scrape(env.ns(), &env.log);
    let text = env.sighup();
    for source in ["alpha.example/statement", "alpha.example/wkd"] {
        assert_eq!(errors(&text, source), errors(&before, source), "{source}");
        assert!(
            value(
                &text,
                &format!("wotgate_source_last_success_timestamp_seconds{{source=\"{source}\"}}")
            )
            .is_some(),
            "{text}"
        );
    }
    assert_eq!(kernel_set(&env.status()), kernel_set(&v0));
    env.expect_peers("healthy again");
    env.d.take();
}
