//! The Postfix test harness proven on a real Postfix and swaks, with a tiny
//! policy server in the test that records every request it answers.

// Which stage PREPENDs once per message: `smtpd_data_restrictions` (one
// request per message, `recipient_count` set); a PREPEND at RCPT adds one
// header per recipient unless the policy server remembers the `instance`.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    os::unix::net::{UnixListener, UnixStream},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use integration_tests::{
    netns::Pair,
    postfix::{
        mailbox::Message,
        swaks::{ClientTls, Swaks},
        tls::TestCert,
        PostfixConfig, PostfixInstance, ServerTls, CHECK_POLICY,
    },
};

type Request = BTreeMap<String, String>;
type Decide = dyn Fn(&Request) -> String + Send + Sync;

const CLIENT: &str = "2001:db8:ffff::2";
const SERVER: &str = "2001:db8:ffff::1";

/// Postfix's policy delegation protocol on the instance's socket: name=value
/// lines, an empty line ends a request, `action=...` and an empty line
/// answers it; many requests per connection. Every request is recorded.
struct PolicyServer {
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl PolicyServer {
    /// `decide` gives the action for a request (`DUNNO`, `REJECT ...`).
    fn start(
        pf: &PostfixInstance,
        decide: impl Fn(&Request) -> String + Send + Sync + 'static,
    ) -> PolicyServer {
        let listener = pf.bind_policy_socket();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let decide: Arc<Decide> = Arc::new(decide);
        let (r, s) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || accept_loop(listener, r, s, decide));
        PolicyServer {
            requests,
            stop,
            thread: Some(thread),
            path: pf.policy_socket(),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The recorded requests of the session that said HELO `helo`.
    fn requests_from(&self, helo: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.get("helo_name").map(String::as_str) == Some(helo))
            .collect()
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(
    listener: UnixListener,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    decide: Arc<Decide>,
) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let (r, s, d) = (requests.clone(), stop.clone(), decide.clone());
                conns.push(std::thread::spawn(move || serve(conn, r, s, d)));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

fn serve(
    conn: UnixStream,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    decide: Arc<Decide>,
) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut req = Request::new();
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with('\n') => {
                let l = line.trim_end_matches('\n');
                if l.is_empty() {
                    let action = decide(&req);
                    requests.lock().unwrap().push(std::mem::take(&mut req));
                    if writer
                        .write_all(format!("action={action}\n\n").as_bytes())
                        .is_err()
                    {
                        return;
                    }
                } else if let Some((k, v)) = l.split_once('=') {
                    req.insert(k.into(), v.into());
                }
                line.clear();
            }
            // A partial line or a timeout: keep what was read, look again.
            Ok(_) | Err(_) => {}
        }
    }
}

fn state(r: &Request) -> &str {
    r.get("protocol_state").map(String::as_str).unwrap_or("")
}

fn helo(r: &Request) -> &str {
    r.get("helo_name").map(String::as_str).unwrap_or("")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn recipients(pf: &PostfixInstance, tag: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| pf.address(&format!("{tag}{i}"))).collect()
}

/// The delivered messages whose `X-Case` header (each send sets one) is `case`.
fn delivered_with(pf: &PostfixInstance, case: &str) -> Vec<Message> {
    pf.messages()
        .into_iter()
        .filter(|m| m.header_values("X-Case").contains(&case))
        .collect()
}

#[test]
fn policy_verdicts_reach_the_client_and_the_mailbox() {
    let pair = Pair::new("pfv", &[]);
    let pf = PostfixInstance::start(
        &pair.server,
        PostfixConfig {
            recipient_restrictions: format!("reject_unauth_destination, {CHECK_POLICY}"),
            data_restrictions: CHECK_POLICY.into(),
            ..Default::default()
        },
    );
    let send = |helo: &str, tag: &str| {
        Swaks::new(&pair.client.name, ip(CLIENT), ip(SERVER))
            .helo(helo)
            .to(&recipients(&pf, tag, 3))
            .header(&format!("X-Case: {helo}"))
            .send()
    };

    // (c) No policy server: Postfix answers 451 4.3.5 at RCPT and never
    // accepts. It tries twice, a second apart, for each recipient.
    let t0 = Instant::now();
    let down = Swaks::new(&pair.client.name, ip(CLIENT), ip(SERVER))
        .helo("down.example")
        .to(&recipients(&pf, "down", 1))
        .send();
    let took = t0.elapsed();
    let rcpt: Vec<_> = down
        .replies_to("RCPT")
        .iter()
        .map(|r| r.text.clone())
        .collect();
    assert_eq!(rcpt.len(), 1, "{}", down.text);
    for r in &rcpt {
        assert!(
            r.starts_with("451 4.3.5 "),
            "RCPT with the policy server down: {r}\n{}",
            down.text
        );
    }
    assert_eq!(down.final_code(), Some(451), "{}", down.text);
    assert_eq!(down.queue_id(), None, "{}", down.text);
    assert_ne!(down.exit, Some(0));
    assert!(
        pf.wait_log("private/wotgate", Duration::from_secs(5)),
        "the maillog names the unreachable policy socket:\n{}",
        pf.maillog()
    );
    eprintln!("policy server down: RCPT answered 451 in {took:?}");

    let policy = PolicyServer::start(&pf, |r| {
        let once = |r: &Request| {
            // One PREPEND per instance (message): remember the instances seen.
            static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
            let i = r.get("instance").cloned().unwrap_or_default();
            let mut seen = SEEN.lock().unwrap();
            if seen.contains(&i) {
                false
            } else {
                seen.push(i);
                true
            }
        };
        match (helo(r), state(r)) {
            ("data.example", "DATA") => "PREPEND X-Wot-Test: data stage".into(),
            ("rcpt.example", "RCPT") => "PREPEND X-Wot-Test: rcpt stage".into(),
            ("dedup.example", "RCPT") if once(r) => "PREPEND X-Wot-Test: rcpt stage, once".into(),
            ("reject.example", "RCPT") => "REJECT 5.7.1 not vouched for by the web of trust".into(),
            _ => "DUNNO".into(),
        }
    });

    // (a) DUNNO at RCPT, PREPEND at DATA: delivered to all three
    // recipients, the header exactly once in each copy, above Received:.
    let ok = send("data.example", "data");
    assert_eq!(ok.final_code(), Some(250), "{}", ok.text);
    assert_eq!(ok.exit, Some(0), "{}", ok.text);
    assert!(ok.queue_id().is_some(), "{}", ok.text);
    pf.wait_messages(3, Duration::from_secs(10));
    let msgs = delivered_with(&pf, "data.example");
    assert_eq!(msgs.len(), 3, "one copy per recipient:\n{}", pf.maillog());
    let mut to: Vec<&str> = msgs
        .iter()
        .flat_map(|m| m.header_values("X-Original-To"))
        .collect();
    to.sort();
    let mut want = recipients(&pf, "data", 3);
    want.sort();
    assert_eq!(to, want);
    for m in &msgs {
        assert_eq!(
            m.header_values("X-Wot-Test"),
            ["data stage"],
            "{:?}",
            m.headers
        );
        assert!(
            m.position("X-Wot-Test") < m.position("Received"),
            "{:?}",
            m.headers
        );
    }
    let data_reqs = policy.requests_from("data.example");
    let states: Vec<&str> = data_reqs.iter().map(state).collect();
    assert_eq!(states, ["RCPT", "RCPT", "RCPT", "DATA"]);
    let last = &data_reqs[3];
    assert_eq!(last["recipient_count"], "3");
    assert_eq!(last["recipient"], "", "no recipient at DATA");
    assert_eq!(last["client_address"], CLIENT, "IPv6 arrives bare");
    assert_eq!(last["sender"], "sender@client.example");
    assert_eq!(last["request"], "smtpd_access_policy");
    let instances: Vec<&str> = data_reqs.iter().map(|r| r["instance"].as_str()).collect();
    assert!(
        !instances[0].is_empty() && instances.iter().all(|i| *i == instances[0]),
        "{instances:?}"
    );

    // The contrast: a PREPEND at RCPT lands once per recipient in every
    // copy, unless the policy server deduplicates by `instance`.
    assert_eq!(send("rcpt.example", "rcpt").final_code(), Some(250));
    assert_eq!(send("dedup.example", "dedup").final_code(), Some(250));
    pf.wait_messages(9, Duration::from_secs(10));
    let rcpt = delivered_with(&pf, "rcpt.example");
    assert_eq!(rcpt.len(), 3);
    for m in &rcpt {
        assert_eq!(m.count("X-Wot-Test"), 3, "{:?}", m.headers);
    }
    let dedup = delivered_with(&pf, "dedup.example");
    assert_eq!(dedup.len(), 3);
    for m in &dedup {
        assert_eq!(m.header_values("X-Wot-Test"), ["rcpt stage, once"]);
    }

    // (b) REJECT 5.7.1: swaks sees 5xx for every recipient, nothing is queued.
    let before = pf.messages().len();
    let no = send("reject.example", "reject");
    for r in no.replies_to("RCPT") {
        // access_map_reject_code (554) with the policy's 5.7.1.
        assert!(r.text.starts_with("554 5.7.1 "), "{}", no.text);
        assert!(
            r.text.contains("not vouched for by the web of trust"),
            "{}",
            r.text
        );
    }
    assert_eq!(no.replies_to("RCPT").len(), 3);
    assert_eq!(no.final_code(), Some(554), "{}", no.text);
    assert_eq!(no.queue_id(), None);
    assert!(
        no.replies_to("DATA").is_empty(),
        "no DATA after every RCPT failed"
    );
    // Mail already queued would be delivered within this time.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(pf.messages().len(), before, "nothing more delivered");
    assert!(delivered_with(&pf, "reject.example").is_empty());
    assert_eq!(pf.delivery_count(), 9, "{}", pf.maillog());

    // IPv4 clients find nobody listening (inet_protocols = ipv6).
    let v4 = Swaks::new(&pair.client.name, ip("192.0.2.2"), ip("192.0.2.1"))
        .to(&[pf.address("v4")])
        .send();
    assert!(!v4.connected(), "{}", v4.text);
    assert_ne!(v4.exit, Some(0));
    assert!(v4.text.contains("Error connecting"), "{}", v4.text);
}

/// Everything the harness made is gone after a test panics: Postfix's
/// processes, the mail user, the directory, the namespaces.
#[test]
fn a_panicking_test_leaves_nothing_behind() {
    // The directory, the user and the namespaces, seen before the panic.
    type Made = (PathBuf, String, Vec<String>);
    let seen: Mutex<Option<Made>> = Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let pair = Pair::new("pfp", &[]);
        let pf = PostfixInstance::start(&pair.server, PostfixConfig::default());
        let t = Swaks::new(&pair.client.name, ip(CLIENT), ip(SERVER))
            .to(&[pf.address("p")])
            .send();
        assert_eq!(t.final_code(), Some(250), "{}", t.text);
        pf.wait_messages(1, Duration::from_secs(10));
        let procs = integration_tests::postfix::processes_of(&pf.etc());
        assert!(procs.len() >= 3, "master, qmgr, pickup at least: {procs:?}");
        *seen.lock().unwrap() = Some((
            pf.dir().to_path_buf(),
            pf.user.name.clone(),
            vec![pair.client.name.clone(), pair.server.name.clone()],
        ));
        panic!("on purpose, with Postfix running");
    });
    assert!(result.is_err());
    let (dir, user, namespaces) = seen.lock().unwrap().take().expect("got that far");
    assert_eq!(
        integration_tests::postfix::processes_of(&dir.join("etc")),
        Vec::<i32>::new()
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
        "user {user} left behind"
    );
    for ns in namespaces {
        assert!(
            !std::path::Path::new(&format!("/run/netns/{ns}")).exists(),
            "namespace {ns} left behind"
        );
    }
}

/// A Postfix that does not start says why (it cannot tell without a
/// terminal or syslog), and leaves nothing behind either.
#[test]
fn a_failed_start_says_why() {
    let pair = Pair::new("pfq", &[]);
    let failed = std::panic::catch_unwind(|| {
        PostfixInstance::start(
            &pair.server,
            PostfixConfig {
                listen: "2001:db8:ffff::99".parse().unwrap(),
                ..Default::default()
            },
        )
    });
    let message = match failed {
        Ok(_) => panic!("postfix started on an address the namespace lacks"),
        Err(e) => e
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "(not a string)".into()),
    };
    assert!(
        message.contains("no local interface found for 2001:db8:ffff::99"),
        "{message}"
    );
    let word = |key: &str| {
        let w = message
            .split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next());
        w.unwrap_or_else(|| panic!("no {key} in {message}"))
            .to_string()
    };
    let (dir, user) = (PathBuf::from(word("dir=")), word("user="));
    assert!(!dir.exists(), "{} left behind", dir.display());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !passwd.contains(&format!("\n{user}:")),
        "user {user} left behind"
    );
}

#[test]
fn tls_sessions_show_in_the_policy_request() {
    let pair = Pair::new("pft", &[]);
    let mut pf = PostfixInstance::start(
        &pair.server,
        PostfixConfig {
            recipient_restrictions: format!("reject_unauth_destination, {CHECK_POLICY}"),
            tls: Some(ServerTls::default()),
            ..Default::default()
        },
    );
    let policy = PolicyServer::start(&pf, |_| "DUNNO".into());
    let client = TestCert::self_signed(pf.dir(), "client", "client.example");
    let other = TestCert::self_signed(pf.dir(), "other", "client.example");
    let fingerprint = client.spki_sha256();
    assert_ne!(fingerprint, other.spki_sha256());
    let send = |pf: &PostfixInstance, helo: &str, tls: Option<ClientTls>| {
        let mut s = Swaks::new(&pair.client.name, ip(CLIENT), ip(SERVER))
            .helo(helo)
            .to(&recipients(pf, helo.split('.').next().unwrap(), 1));
        if let Some(t) = tls {
            s = s.tls(t);
        }
        let t = s.send();
        assert_eq!(t.final_code(), Some(250), "{}", t.text);
        let reqs = policy.requests_from(helo);
        assert_eq!(reqs.len(), 1, "one RCPT, one request: {reqs:?}");
        reqs.into_iter().next().unwrap()
    };
    let with_cert = |cert: &TestCert| ClientTls {
        cert_and_key: Some((cert.cert.clone(), cert.key.clone())),
        ..Default::default()
    };

    // (d) STARTTLS with a client certificate: the SHA-256 of its SPKI,
    // computed here with openssl, arrives as ccert_pubkey_fingerprint.
    let r = send(&pf, "cert.example", Some(with_cert(&client)));
    assert_eq!(
        r["ccert_pubkey_fingerprint"].to_uppercase(),
        fingerprint,
        "{r:?}"
    );
    assert_eq!(r["encryption_protocol"], "TLSv1.3", "{r:?}");
    assert!(r["encryption_cipher"].starts_with("TLS_"), "{r:?}");
    assert!(
        r["encryption_keysize"].parse::<u32>().unwrap() >= 128,
        "{r:?}"
    );
    // Unverified self-signed: no subject or issuer (notes), but a fingerprint.
    assert_eq!(r["ccert_subject"], "", "{r:?}");
    let r = send(&pf, "other.example", Some(with_cert(&other)));
    assert_eq!(r["ccert_pubkey_fingerprint"], other.spki_sha256());
    let r = send(&pf, "nocert.example", Some(ClientTls::default()));
    assert_eq!(r["ccert_pubkey_fingerprint"], "", "{r:?}");
    assert_eq!(r["encryption_protocol"], "TLSv1.3", "{r:?}");
    let r = send(&pf, "plain.example", None);
    assert_eq!(r["encryption_protocol"], "", "{r:?}");
    assert_eq!(r["encryption_cipher"], "", "{r:?}");

    // (e) The client forces TLS 1.2 with a CBC suite; the policy server sees it.
    let r = send(
        &pf,
        "cbc.example",
        Some(ClientTls {
            protocol: Some("tlsv1_2".into()),
            cipher: Some("ECDHE-ECDSA-AES128-SHA256".into()),
            ..with_cert(&client)
        }),
    );
    assert_eq!(r["encryption_protocol"], "TLSv1.2", "{r:?}");
    assert_eq!(r["encryption_cipher"], "ECDHE-ECDSA-AES128-SHA256", "{r:?}");
    assert_eq!(r["ccert_pubkey_fingerprint"], fingerprint);
    pf.wait_messages(5, Duration::from_secs(10));

    // The server side is configurable too: TLS 1.2+ with AEAD suites only
    // (the CBC suites are the ones with a SHA1/SHA256/SHA384 MAC). The
    // forced CBC session now fails its handshake and never reaches RCPT.
    pf.reconfigure(PostfixConfig {
        tls: Some(ServerTls {
            protocols: Some(">=TLSv1.2".into()),
            exclude_ciphers: Some("SHA1, SHA256, SHA384".into()),
            ..Default::default()
        }),
        ..pf.config.clone()
    });
    let cbc = Swaks::new(&pair.client.name, ip(CLIENT), ip(SERVER))
        .helo("cbc2.example")
        .to(&recipients(&pf, "cbc2", 1))
        .tls(ClientTls {
            protocol: Some("tlsv1_2".into()),
            cipher: Some("ECDHE-ECDSA-AES128-SHA256".into()),
            ..Default::default()
        })
        .send();
    assert_ne!(cbc.exit, Some(0), "{}", cbc.text);
    assert!(cbc.replies_to("RCPT").is_empty(), "{}", cbc.text);
    assert!(cbc.text.contains("TLS startup failed"), "{}", cbc.text);
    assert!(policy.requests_from("cbc2.example").is_empty());
    let r = send(
        &pf,
        "gcm.example",
        Some(ClientTls {
            protocol: Some("tlsv1_2".into()),
            ..Default::default()
        }),
    );
    assert_eq!(r["encryption_protocol"], "TLSv1.2", "{r:?}");
    assert!(
        r["encryption_cipher"].contains("GCM") || r["encryption_cipher"].contains("CHACHA20"),
        "{r:?}"
    );
}

/// The internal header name a policy server PREPENDs under in the recipe
/// below: a site secret that only the policy server and header_checks know
/// (a sender who knows it gets its field REPLACEd into ours, so it must
/// never show: REPLACE renames ours, the IGNORE rule drops guesses).
const INTERNAL_AR: &str = "X-Wotgate-Internal-AR-7f3a9c";

/// (f) header_checks strip incoming fields that carry our authserv-id and
/// keep everyone else's. Surprise: cleanup applies header_checks to the
/// policy server's PREPENDed header too, so a plain `PREPEND
/// Authentication-Results: mx.example; ...` is stripped with the forgeries.
/// What works: PREPEND under an internal name that header_checks REPLACEs
/// into Authentication-Results (a REPLACEd header is not checked again);
/// incoming fields under that internal name are dropped.
#[test]
fn header_checks_strip_a_forged_authentication_results() {
    let pair = Pair::new("pfh", &[]);
    let pf = PostfixInstance::start(
        &pair.server,
        PostfixConfig {
            data_restrictions: CHECK_POLICY.into(),
            header_checks: vec![
                format!(
                    r"/^{INTERNAL_AR}:[[:space:]]*(.*)$/ REPLACE Authentication-Results: ${{1}}"
                ),
                r"/^X-Wotgate-Internal-AR-/ IGNORE".into(),
                r"/^Authentication-Results:[[:space:]]*mx\.example([[:space:];]|$)/ IGNORE".into(),
            ],
            ..Default::default()
        },
    );
    let _policy = PolicyServer::start(&pf, |r| match (helo(r), state(r)) {
        ("naive.example", "DATA") => {
            "PREPEND Authentication-Results: mx.example; x-wot=pass (naive)".into()
        }
        ("recipe.example", "DATA") => {
            format!("PREPEND {INTERNAL_AR}: mx.example; x-wot=pass (ours)")
        }
        _ => "DUNNO".into(),
    });
    let send = |helo: &str| {
        let t = Swaks::new(&pair.client.name, ip(CLIENT), ip(SERVER))
            .helo(helo)
            .to(&[pf.address(helo.split('.').next().unwrap())])
            .header(&format!("X-Case: {helo}"))
            .header("Authentication-Results: mx.example; x-wot=pass (forged)")
            .header("Authentication-Results: MX.EXAMPLE;x-wot=pass (forged, no space)")
            .header("X-Wotgate-Internal-AR-guess: mx.example; x-wot=pass (forged guess)")
            .header("Authentication-Results: other.example; spf=pass smtp.mailfrom=client.example")
            .header("Authentication-Results: mx.example.evil; x-wot=pass (another id)")
            .send();
        assert_eq!(t.final_code(), Some(250), "{}", t.text);
    };
    send("naive.example");
    send("recipe.example");
    pf.wait_messages(2, Duration::from_secs(10));
    for case in ["naive.example", "recipe.example"] {
        let m = &delivered_with(&pf, case)[0];
        let ar = m.header_values("Authentication-Results");
        eprintln!("{case}: delivered Authentication-Results: {ar:?}");
        assert!(!ar.iter().any(|v| v.contains("forged")), "{:?}", m.headers);
        assert!(
            !m.headers
                .iter()
                .any(|(n, _)| n.starts_with("X-Wotgate-Internal")),
            "{:?}",
            m.headers
        );
        // Everyone else's fields stay, in order.
        let others: Vec<&str> = ar
            .iter()
            .copied()
            .filter(|v| !v.starts_with("mx.example;"))
            .collect();
        assert_eq!(
            others,
            [
                "other.example; spf=pass smtp.mailfrom=client.example",
                "mx.example.evil; x-wot=pass (another id)"
            ],
            "{:?}",
            m.headers
        );
    }
    let naive = &delivered_with(&pf, "naive.example")[0];
    assert!(
        !naive
            .header_values("Authentication-Results")
            .iter()
            .any(|v| v.contains("(naive)")),
        "a PREPENDed header is subject to header_checks: {:?}",
        naive.headers
    );
    let ours = &delivered_with(&pf, "recipe.example")[0];
    let ar = ours.header_values("Authentication-Results");
    assert_eq!(
        ar.iter().filter(|v| v.contains("(ours)")).count(),
        1,
        "{ar:?}"
    );
    assert_eq!(
        ar[0], "mx.example; x-wot=pass (ours)",
        "ours first, above Received:"
    );
    assert!(ours.position("Authentication-Results") < ours.position("Received"));
}
