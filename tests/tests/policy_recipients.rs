//! Per-recipient webs of trust end to end: a real Postfix behind the XDP gate,
//! `wotgate run` with a recipients directory, one SMTP session for two users.

// The world (tests/src/world.rs): our root certified alpha, alpha beta, beta
// gamma; the system's depth 2 ends before gamma (depth 3) and eve is known to
// nobody. Alice's own web (replace) has beta as its root at depth 1, so it
// trusts gamma; bob has no web of his own and uses the system's.

// Shared with policy_postfix, which uses the parts this test does not.
#[allow(dead_code)]
mod postfix_site;

use postfix_site::{ip, ours, Site, AUTHSERV_ID, ENFORCE, SERVER};

/// Adds `[trust] recipients_directory` to the site's configuration and
/// writes alice's web: beta as her only root, depth 1.
fn give_alice_her_own_web(site: &Site) -> String {
    let alice = site.pf.address("alice");
    let dir = site.world.dir.join("recipients.d");
    std::fs::create_dir_all(&dir).unwrap();
    let beta = site.party("beta").tsk.fingerprint().to_hex();
    std::fs::write(
        dir.join(format!("{alice}.toml")),
        format!("# alice trusts whom beta vouches for\ncombine = \"replace\"\nroots = [\"{beta}\"]\ndepth = 1\n"),
    )
    .unwrap();
    let cfg = std::fs::read_to_string(&site.config).unwrap();
    assert!(cfg.contains("[trust]\n"), "{cfg}");
    let cfg = cfg.replacen(
        "[trust]\n",
        "[trust]\nrecipients_directory = \"recipients.d\"\n",
        1,
    );
    std::fs::write(&site.config, cfg).unwrap();
    alice
}

#[test]
fn one_session_is_accepted_for_alice_and_rejected_for_bob() {
    let site = Site::start("pfr", ENFORCE);
    let gamma = site.party("gamma");
    let (gamma_ip, gamma_domain) = (ip(gamma.client), gamma.domain);
    let gamma_fpr = gamma.tsk.fingerprint().to_hex();

    // Without per-recipient webs nobody trusts gamma: dropped at the gate.
    site.assert_dropped(gamma_ip, ip(SERVER));

    // Alice's web, read on reload with everything else.
    let alice = give_alice_her_own_web(&site);
    site.reload();
    let bob = site.pf.address("bob");

    // One session, two recipients: 250 for alice, 5.7.1 for bob.
    let before = site.pf.delivery_count();
    let mut s = site.raw_session("gamma");
    let mail = s.send(&format!("MAIL FROM:<postmaster@{gamma_domain}>"));
    assert!(mail.starts_with("250 "), "{mail}\n{}", site.daemon_log());
    let to_alice = s.send(&format!("RCPT TO:<{alice}>"));
    assert!(
        to_alice.starts_with("250 "),
        "alice: {to_alice}\n{}",
        site.pf.maillog()
    );
    let to_bob = s.send(&format!("RCPT TO:<{bob}>"));
    assert!(
        to_bob.starts_with(&format!(
            "554 5.7.1 <{bob}>: Recipient address rejected: wotgate prefix check failed: "
        )),
        "bob: {to_bob}"
    );
    assert!(to_bob.contains("this server's web of trust"), "{to_bob}");
    let data = s.send("DATA");
    assert!(data.starts_with("354 "), "{data}");
    let queued = s.send(&format!(
        "From: postmaster@{gamma_domain}\r\nSubject: two webs\r\nX-Case: webs\r\n\r\nfor alice, not for bob\r\n."
    ));
    assert!(
        queued.starts_with("250 "),
        "{queued}\n{}",
        site.daemon_log()
    );
    s.send("QUIT");
    site.pf
        .wait_messages(before + 1, std::time::Duration::from_secs(20));
    let got = site.delivered("webs");
    assert_eq!(got.len(), 1, "alice's copy only\n{}", site.pf.maillog());
    let log = site.pf.maillog();
    assert!(log.contains(&format!("to=<{alice}>")), "{log}");
    assert!(!log.contains(&format!("to=<{bob}>, relay=local")), "{log}");

    // Alice's copy carries one label, naming her web.
    let want = format!(
        "{AUTHSERV_ID}; x-wot=pass policy.web={alice} policy.remote-ip=\"{}\" policy.prefix=\"2001:db8:c::/48\" policy.domain={gamma_domain} policy.signer={gamma_fpr} policy.depth=1 policy.checks=\"prefix,sender\"",
        gamma_ip
    );
    assert_eq!(ours(&got[0]), [want.as_str()], "{:#?}", got[0].headers);
    assert_eq!(got[0].header_values("Authentication-Results").len(), 1);

    // A peer trusted by nobody is still dropped at the gate.
    site.assert_dropped(ip(site.party("eve").client), ip(SERVER));
    // The system web's peers are unchanged: alpha reaches bob.
    let m = site.send_ok(
        site.swaks("alpha", "alpha-bob")
            .to(std::slice::from_ref(&bob)),
        1,
    );
    assert!(
        ours(&m[0])[0].contains("x-wot=pass policy.remote-ip="),
        "{:?}",
        ours(&m[0])
    );

    // `inspect` and `check` name the web that admits gamma's prefix.
    let wotgate = |args: &[&str]| {
        let bin = integration_tests::wotgate_bin();
        let pins = site.pins.0.to_str().unwrap().to_string();
        let mut all = vec![bin.to_str().unwrap(), "--pin-dir", &pins];
        all.extend(args);
        let out = site.pair.server.cmd(&all).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = wotgate(&["inspect"]);
    assert!(
        text.lines()
            .any(|l| l.contains("2001:db8:c::/48") && l.contains(&format!("web={alice}"))),
        "inspect:\n{text}"
    );
    let text = wotgate(&["check", gamma.client]);
    assert!(text.contains(&format!("web={alice}")), "check:\n{text}");
}
