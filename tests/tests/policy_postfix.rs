//! The policy server end to end: a real Postfix behind the XDP gate, the daemon
//! `wotgate run` serving the policy on Postfix's socket, swaks from clients.

// The world (tests/src/world.rs): alpha (depth 1) and beta (depth 2) are
// trusted, beta's statement lists its TLS key; gamma is beyond the depth,
// mallory refused, eve unknown. The site is in `postfix_site`.

mod postfix_site;

use std::time::{Duration, Instant};

use integration_tests::postfix::swaks::ClientTls;
use postfix_site::{
    header_checks, ip, ours, Modes, Site, AUTHSERV_ID, CLIENT_V4, ENFORCE, POLICY_SERVICE,
    POLICY_URL, SERVER, SERVER_V4,
};

/// Our header for a pass: everything the verdict says, in order.
fn pass_header(site: &Site, party: &str, depth: u32, checks: &str) -> String {
    let p = site.party(party);
    format!(
        "{AUTHSERV_ID}; x-wot=pass policy.remote-ip=\"{}\" policy.prefix=\"{}\" policy.domain={} policy.signer={} policy.depth={depth} policy.checks=\"{checks}\"",
        p.client,
        p.prefixes[0],
        p.domain,
        p.tsk.fingerprint().to_hex()
    )
}

/// Exactly one Authentication-Results field, ours and equal to `want`,
/// above Postfix's Received:, and no internal header left.
fn assert_labelled(m: &integration_tests::postfix::mailbox::Message, want: &str) {
    assert_eq!(
        m.header_values("Authentication-Results"),
        [want],
        "{:#?}",
        m.headers
    );
    assert!(
        m.position("Authentication-Results") < m.position("Received"),
        "{:#?}",
        m.headers
    );
    assert!(
        !m.headers
            .iter()
            .any(|(n, _)| n.starts_with("X-Wotgate-AR-")),
        "{:#?}",
        m.headers
    );
}

#[test]
fn trusted_peers_get_one_header_and_everyone_else_is_kept_out() {
    let site = Site::start("pfe", ENFORCE);
    let t0 = Instant::now();

    // A trusted peer (depth 1): delivered with our header, exactly once.
    let alpha = pass_header(&site, "alpha", 1, "prefix,sender");
    let m = site.send_ok(site.swaks("alpha", "alpha-one"), 1);
    assert_labelled(&m[0], &alpha);

    // Three recipients: three copies, still one header in each.
    let to: Vec<String> = (1..=3)
        .map(|i| site.pf.address(&format!("a3-{i}")))
        .collect();
    let copies = site.send_ok(site.swaks("alpha", "alpha-three").to(&to), 3);
    let mut got: Vec<&str> = copies
        .iter()
        .flat_map(|m| m.header_values("X-Original-To"))
        .collect();
    got.sort();
    assert_eq!(got, to);
    for m in &copies {
        assert_labelled(m, &alpha);
    }

    // Sender alignment: a subdomain is fine, another domain is rejected.
    let m = site.send_ok(
        site.swaks("alpha", "alpha-sub")
            .from("lists@lists.alpha.example"),
        1,
    );
    assert_labelled(&m[0], &alpha);
    site.send_rejected(
        site.swaks("alpha", "alpha-as-beta").from("postmaster@beta.example"),
        554,
        &format!("5.7.1 wotgate sender check failed: envelope sender <postmaster@beta.example> is not in alpha.example or a subdomain of it; see {POLICY_URL}"),
    );

    // A bounce (null sender) is judged by its HELO name.
    let m = site.send_ok(site.swaks("alpha", "alpha-bounce").from("<>"), 1);
    assert_labelled(&m[0], &alpha);
    site.send_rejected(
        site.swaks("alpha", "alpha-bounce-helo").from("<>").helo("mail.beta.example"),
        554,
        &format!("5.7.1 wotgate sender check failed: null sender and HELO name \"mail.beta.example\" is not in alpha.example or a subdomain of it; see {POLICY_URL}"),
    );

    // BDAT (CHUNKING) instead of DATA: the data restrictions still run
    // once per message, so still one header per copy.
    let to: Vec<String> = (1..=2)
        .map(|i| site.pf.address(&format!("bdat-{i}")))
        .collect();
    let before = site.pf.delivery_count();
    let replies = site.send_bdat("alpha", "alpha-bdat", &to);
    assert_eq!(
        replies[..3],
        ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"]
    );
    assert!(
        replies[3].starts_with("250 2.0.0 Ok: ") && replies[3].contains(" bytes queued as "),
        "{replies:?}"
    );
    site.pf.wait_messages(before + 2, Duration::from_secs(20));
    let copies = site.delivered("alpha-bdat");
    assert_eq!(copies.len(), 2);
    for m in &copies {
        assert_labelled(m, &alpha);
    }

    // A forged Authentication-Results with our authserv-id (in any
    // spelling RFC 8601 allows) does not survive; other ids do.
    let forged = site
        .swaks("alpha", "alpha-forged")
        .header("Authentication-Results: mx.example; x-wot=pass (forged)")
        .header("Authentication-Results: MX.EXAMPLE;x-wot=pass (forged, no space)")
        .header("Authentication-Results: mx.example (forged, a comment); x-wot=pass")
        .header("Authentication-Results: mx.example 1; x-wot=pass (forged, a version)")
        .header("X-Wotgate-AR-guess: mx.example; x-wot=pass (forged, a guessed name)")
        .header("Authentication-Results: other.example; spf=pass smtp.mailfrom=alpha.example")
        .header("Authentication-Results: mx.example.evil; x-wot=pass (another id)");
    let m = &site.send_ok(forged, 1)[0];
    assert_eq!(
        m.header_values("Authentication-Results"),
        [
            alpha.as_str(),
            "other.example; spf=pass smtp.mailfrom=alpha.example",
            "mx.example.evil; x-wot=pass (another id)"
        ],
        "{:#?}",
        m.headers
    );
    assert!(
        !m.headers.iter().any(|(_, v)| v.contains("(forged")),
        "{:#?}",
        m.headers
    );
    assert_eq!(ours(m), [alpha.as_str()]);

    // beta (depth 2) binds its mail to its TLS key: accepted over STARTTLS
    // with that client certificate, with TLS 1.3 or TLS 1.2 with AES-GCM.
    let beta = pass_header(&site, "beta", 2, "prefix,sender,tls-key,tls-aead");
    let m = site.send_ok(
        site.swaks("beta", "beta-cert")
            .tls(Site::with_cert(&site.beta_cert)),
        1,
    );
    assert_labelled(&m[0], &beta);
    let m = site.send_ok(
        site.swaks("beta", "beta-tls12-gcm").tls(ClientTls {
            protocol: Some("tlsv1_2".into()),
            cipher: Some("ECDHE-ECDSA-AES128-GCM-SHA256".into()),
            ..Site::with_cert(&site.beta_cert)
        }),
        1,
    );
    assert_labelled(&m[0], &beta);
    // Rejected without TLS, without a certificate, with another one.
    let no_cert = &format!("5.7.1 wotgate tls-key check failed: no client certificate: beta.example's statement lists TLS keys, so present one of them with STARTTLS; see {POLICY_URL}");
    site.send_rejected(site.swaks("beta", "beta-plain"), 554, no_cert);
    site.send_rejected(
        site.swaks("beta", "beta-nocert").tls(ClientTls::default()),
        554,
        no_cert,
    );
    site.send_rejected(
        site.swaks("beta", "beta-other")
            .tls(Site::with_cert(&site.other_cert)),
        554,
        &format!(
            "5.7.1 wotgate tls-key check failed: client certificate key {} is not one of the TLS keys in beta.example's statement; see {POLICY_URL}",
            site.other_cert.spki_sha256()
        ),
    );
    // The right certificate, but TLS 1.2 with a CBC suite: not AEAD.
    site.send_rejected(
        site.swaks("beta", "beta-cbc").tls(ClientTls {
            protocol: Some("tlsv1_2".into()),
            cipher: Some("ECDHE-ECDSA-AES128-SHA256".into()),
            ..Site::with_cert(&site.beta_cert)
        }),
        554,
        &format!("5.7.1 wotgate tls-aead check failed: TLSv1.2 with ECDHE-ECDSA-AES128-SHA256 is not TLS 1.2 or 1.3 with an AEAD cipher (AES-GCM, ChaCha20-Poly1305); see {POLICY_URL}"),
    );

    // Untrusted, beyond the depth, refused, IPv4: the gate drops their SYNs.
    for name in ["eve", "gamma", "mallory"] {
        site.assert_dropped(ip(site.party(name).client), ip(SERVER));
    }
    site.assert_dropped(ip(CLIENT_V4), ip(SERVER_V4));
    // Nothing more than the accepted messages was delivered (copies: one,
    // three, subdomain, bounce, BDAT to two, forged, beta TLS 1.3 and 1.2).
    assert_eq!(
        site.pf.delivery_count(),
        1 + 3 + 1 + 1 + 2 + 1 + 1 + 1,
        "{}",
        site.pf.maillog()
    );
    eprintln!("enforce cases took {:?}", t0.elapsed());
}

#[test]
fn observe_rollout_and_a_dead_policy_server() {
    let mut site = Site::start("pfo", ENFORCE);
    let t0 = Instant::now();
    let eve = ip(site.party("eve").client);
    let no_network = |p: &str| {
        format!("5.7.1 wotgate prefix check failed: {p} is in no network of a signed statement this server trusts; see {POLICY_URL}")
    };
    site.assert_dropped(eve, ip(SERVER));

    // Step 1 of the rollout, the gate only counts: eve and the IPv4 client
    // reach Postfix and the policy rejects them.
    site.write_config(Modes {
        gate_observe: true,
        ..ENFORCE
    });
    site.reload();
    assert!(
        site.daemon_log().contains("gate settings changed"),
        "{}",
        site.daemon_log()
    );
    site.send_rejected(
        site.swaks_v4("v4-enforce"),
        554,
        &format!("5.7.1 wotgate prefix check failed: client {CLIENT_V4} is IPv4; only IPv6 networks named in a trusted signed statement are accepted; see {POLICY_URL}"),
    );
    site.send_rejected(
        site.swaks("eve", "eve-enforce"),
        554,
        &no_network(site.party("eve").client),
    );
    site.send_rejected(
        site.swaks("gamma", "gamma-enforce"),
        554,
        &no_network(site.party("gamma").client),
    );
    site.send_rejected(
        site.swaks("mallory", "mallory-enforce"),
        554,
        "5.7.1 wotgate prefix check failed: 2001:db8:a:bad::10 is in 2001:db8:a:bad::/64, denied by a refused key's statement for mallory.example; see https://mx.example/wotgate",
    );

    // The policy server dies (SIGKILL leaves its socket behind): Postfix
    // answers 4xx and accepts nothing, trusted or not. A session that
    // passed RCPT before gets the 4xx at DATA.
    let mut midway = site.raw_session("alpha");
    assert_eq!(
        midway.send("MAIL FROM:<postmaster@alpha.example>"),
        "250 2.1.0 Ok"
    );
    let rcpt = midway.send(&format!("RCPT TO:<{}>", site.pf.address("alpha-midway")));
    assert_eq!(rcpt, "250 2.1.5 Ok");
    site.kill_daemon();
    assert_eq!(
        midway.send("DATA"),
        "450 4.3.5 <DATA>: Data command rejected: wotgate policy service unavailable"
    );
    assert!(midway.send("QUIT").starts_with("221 "));
    assert!(site.pf.policy_socket().exists(), "the stale socket stays");
    let down = "4.3.5 wotgate policy service unavailable";
    let t = Instant::now();
    site.send_rejected(site.swaks("alpha", "alpha-down"), 450, down);
    eprintln!("policy server down: RCPT answered 450 in {:?}", t.elapsed());
    site.send_rejected(site.swaks("eve", "eve-down"), 450, down);
    assert!(
        site.pf.wait_log("private/wotgate", Duration::from_secs(5)),
        "{}",
        site.pf.maillog()
    );

    // Back: it replaces the stale socket and serves again.
    site.start_daemon();
    let alpha = pass_header(&site, "alpha", 1, "prefix,sender");
    let m = site.send_ok(site.swaks("alpha", "alpha-back"), 1);
    assert_labelled(&m[0], &alpha);
    site.send_rejected(
        site.swaks("eve", "eve-back"),
        554,
        &no_network(site.party("eve").client),
    );

    // The policy in observe too ([policy] changes with a restart): eve and
    // the IPv4 client are delivered, labelled as failed; alpha still passes.
    site.write_config(Modes {
        gate_observe: true,
        policy_observe: true,
        ..ENFORCE
    });
    let mut d = site.daemon.take().unwrap();
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(10)).is_some_and(|s| s.success()));
    drop(d);
    site.start_daemon();
    let e = site.party("eve");
    let m = site.send_ok(site.swaks("eve", "eve-observe"), 1);
    assert_labelled(
        &m[0],
        &format!(
            "{AUTHSERV_ID}; x-wot=fail reason=\"prefix: {} is in no network of a signed statement this server trusts\" policy.remote-ip=\"{}\"",
            e.client, e.client
        ),
    );
    let m = site.send_ok(site.swaks_v4("v4-observe"), 1);
    assert_labelled(
        &m[0],
        &format!(
            "{AUTHSERV_ID}; x-wot=fail reason=\"prefix: client {CLIENT_V4} is IPv4; only IPv6 networks named in a trusted signed statement are accepted\" policy.remote-ip=\"{CLIENT_V4}\""
        ),
    );
    let m = site.send_ok(site.swaks("alpha", "alpha-observe"), 1);
    assert_labelled(&m[0], &alpha);
    // In observe a sender that fails alignment is labelled too.
    let m = site.send_ok(
        site.swaks("alpha", "alpha-observe-as-beta")
            .from("postmaster@beta.example"),
        1,
    );
    assert_labelled(
        &m[0],
        &format!(
            "{AUTHSERV_ID}; x-wot=fail reason=\"sender: envelope sender <postmaster@beta.example> is not in alpha.example or a subdomain of it\" policy.remote-ip=\"{}\" policy.domain=alpha.example policy.signer={} policy.depth=1",
            site.party("alpha").client,
            site.party("alpha").tsk.fingerprint().to_hex()
        ),
    );
    assert_eq!(site.pf.delivery_count(), 5, "{}", site.pf.maillog());
    eprintln!("rollout and outage cases took {:?}", t0.elapsed());
}

/// A hung policy server (SIGSTOP) holds the command for Postfix's
/// `timeout=10s` per try, two tries, then the same 4xx; a stale trust state
/// defers. Never a permit.
#[test]
fn a_hung_or_stale_policy_server_never_permits() {
    let mut site = Site::start("pfs", ENFORCE);
    let alpha = pass_header(&site, "alpha", 1, "prefix,sender");
    let m = site.send_ok(site.swaks("alpha", "alpha-before"), 1);
    assert_labelled(&m[0], &alpha);

    let daemon = site.daemon.as_ref().unwrap();
    daemon.signal(libc::SIGSTOP);
    let t = Instant::now();
    let mut s = site.swaks("alpha", "alpha-hung");
    s.timeout_secs = 60;
    site.send_rejected(s, 450, "4.3.5 wotgate policy service unavailable");
    let took = t.elapsed();
    eprintln!("policy server hung: RCPT answered 450 after {took:?}");
    assert!(
        took >= Duration::from_secs(20) && took < Duration::from_secs(40),
        "two tries of 10 s: {took:?}"
    );
    // The gate needs no daemon: untrusted SYNs are still dropped.
    site.assert_dropped(ip(site.party("eve").client), ip(SERVER));

    // Resumed, it answers again (the stale requests of Postfix's abandoned
    // connections are not in the way).
    site.daemon.as_ref().unwrap().signal(libc::SIGCONT);
    let m = site.send_ok(site.swaks("alpha", "alpha-after"), 1);
    assert_labelled(&m[0], &alpha);

    // Trust state older than max_state_age (no refresh for 5 s): deferred,
    // trusted or not, until a refresh makes it fresh again.
    site.write_config(Modes {
        max_state_age: "5s",
        ..ENFORCE
    });
    let mut d = site.daemon.take().unwrap();
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(10)).is_some_and(|s| s.success()));
    drop(d);
    site.start_daemon();
    let m = site.send_ok(site.swaks("alpha", "alpha-fresh"), 1);
    assert_labelled(&m[0], &alpha);
    std::thread::sleep(Duration::from_secs(6));
    site.send_rejected(
        site.swaks("alpha", "alpha-stale"),
        450,
        "4.7.1 wotgate: the trust state is # s old, older than policy.max_state_age; try again later",
    );
    site.reload();
    let m = site.send_ok(site.swaks("alpha", "alpha-refreshed"), 1);
    assert_labelled(&m[0], &alpha);
    assert_eq!(site.pf.delivery_count(), 4, "{}", site.pf.maillog());
}

/// The README shows the lines these tests run: the policy service at both
/// stages with its default_action, and the forged-header recipe (for the
/// README's example authserv-id and secret name).
#[test]
fn the_readme_shows_the_lines_tested_here() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = flat(&readme);
    let lines = [
        format!("smtpd_data_restrictions = {POLICY_SERVICE}"),
        format!(
            "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, {POLICY_SERVICE}"
        ),
        "header_checks = regexp:/etc/postfix/wotgate_header_checks".into(),
    ];
    for line in lines
        .into_iter()
        .chain(header_checks("X-Wotgate-AR-k3Jq9w", "mx.example.org"))
    {
        assert!(text.contains(&flat(&line)), "README.md lacks {line:?}");
    }
}
