//! The policy verdict from real keys and signed statements: prefixes (deny
//! inside allow, IPv4, untrusted), stages, alignment, TLS binding and policy,
//! observe mode, stale state, static overrides, and a million prefixes.

mod statement_fixtures;

use std::time::{Duration, Instant, SystemTime};

use sequoia_openpgp::policy::StandardPolicy;
use sha2::Digest;
use statement_fixtures::*;
use wotgate::apply::{prepare, Prepared};
use wotgate::model::config::{PolicyMode, TlsAead};
use wotgate::model::prefixes::{PrefixSet, Verdict};
use wotgate::plan::TestingPolicy;
use wotgate::policy::trust::SnapshotEntry;
use wotgate::policy::{judge, Claim, Limits, Reply, Request, TrustSnapshot, VerdictSettings};
use wotgate::source::Named;
use wotgate::statement::SerialState;

const LIMITS: Limits = Limits {
    max_request_bytes: 16384,
    max_attributes: 64,
};

/// A fresh TLS key's SPKI SHA-256 in Postfix's `ccert_pubkey_fingerprint` form.
fn tls_key() -> String {
    let kp = rcgen::KeyPair::generate().unwrap();
    let d = sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&kp));
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

struct Setup {
    w: World,
    prepared: Prepared,
    alpha_tls: String,
}

/// alpha (a root, depth 0) 2001:db8:a00::/40 with a TLS key; beta (depth 1)
/// 2001:db8:b::/48; refused mallory's 2001:db8:a02:100::/56 inside alpha;
/// untrusted eve 2001:db8:e::/48.
fn setup() -> Setup {
    let w = World::new();
    let alpha_tls = tls_key();
    let mut a = statement("alpha.example", 7, &["2001:db8:a00::/40"]);
    a.tls_key_sha256 = vec![alpha_tls.clone()];
    let files = vec![
        Named {
            origin: "alpha.asc".into(),
            bytes: w.alpha.sign(&a),
        },
        Named {
            origin: "beta.asc".into(),
            bytes: w
                .beta
                .sign(&statement("beta.example", 3, &["2001:db8:b::/48"])),
        },
        Named {
            origin: "mallory.asc".into(),
            bytes: w
                .mallory
                .sign(&statement("mallory.example", 1, &["2001:db8:a02:100::/56"])),
        },
        Named {
            origin: "eve.asc".into(),
            bytes: w
                .eve
                .sign(&statement("eve.example", 1, &["2001:db8:e::/48"])),
        },
    ];
    let p = StandardPolicy::new();
    let prepared = prepare(
        &test_rules(),
        TestingPolicy::Allow,
        &w.view,
        &files,
        SerialState::default(),
        &p,
        at(T0),
        vec![],
    )
    .unwrap();
    assert_eq!(prepared.plan.accepted_statements, 3, "eve is untrusted");
    Setup {
        w,
        prepared,
        alpha_tls,
    }
}

fn settings() -> VerdictSettings {
    VerdictSettings {
        authserv_id: "mx.example".into(),
        mode: PolicyMode::Enforce,
        header_name: "Authentication-Results".into(),
        max_state_age: Duration::from_secs(3600),
        sender_alignment: false,
        helo_alignment: false,
        tls_aead: TlsAead::Auto,
        policy_url: Some("https://mx.example/wotgate".into()),
    }
}

/// A request as Postfix sends it, with `extra` lines added.
fn req(stage: &str, client: &str, extra: &[&str]) -> Request {
    let mut t = format!(
        "request=smtpd_access_policy\nprotocol_state={stage}\nprotocol_name=ESMTP\nclient_address={client}\nclient_name=unknown\nhelo_name=mx.beta.example\nsender=postmaster@beta.example\nrecipient=user@mx.example\ninstance=1a2b.3c4d.5e6f.0\nccert_pubkey_fingerprint=\nencryption_protocol=\nencryption_cipher=\n"
    );
    for e in extra {
        t.push_str(e);
        t.push('\n');
    }
    t.push('\n');
    // A later attribute of the same name would be a duplicate: the extras
    // replace the defaults instead.
    let mut lines: Vec<&str> = t.lines().collect();
    for e in extra {
        let name = e.split('=').next().unwrap();
        if let Some(i) = lines
            .iter()
            .position(|l| l.starts_with(&format!("{name}=")))
        {
            lines.remove(i);
        }
    }
    let text = lines.join("\n") + "\n\n";
    Request::parse(text.as_bytes(), LIMITS).unwrap()
}

fn snapshot(s: &Setup, overrides: Option<&PrefixSet>) -> TrustSnapshot {
    TrustSnapshot::from_prepared(&s.prepared, overrides, at(T0))
}

fn reject_text(r: Reply) -> String {
    match r {
        Reply::Reject(t) => t,
        other => panic!("expected a REJECT, got {other:?}"),
    }
}

#[test]
fn a_trusted_peer_gets_one_header_at_data_and_dunno_before() {
    let s = setup();
    let snap = snapshot(&s, None);
    let st = settings();
    let r = judge(
        &req("DATA", "2001:db8:b::10", &["recipient_count=3"]),
        Some(&snap),
        at(T0),
        &st,
    );
    let beta = s.w.beta.fpr().to_hex();
    assert_eq!(
        r,
        Reply::Prepend(format!(
            "Authentication-Results: mx.example; x-wot=pass policy.remote-ip=\"2001:db8:b::10\" policy.prefix=\"2001:db8:b::/48\" policy.domain=beta.example policy.signer={beta} policy.depth=1 policy.checks=\"prefix\""
        ))
    );
    assert!(
        r.to_wire()
            .starts_with("action=PREPEND Authentication-Results: ")
            && r.to_wire().ends_with("\n\n")
    );
    // Every recipient is asked about at RCPT: DUNNO, so no header per recipient.
    for stage in ["CONNECT", "EHLO", "MAIL", "RCPT", "END-OF-MESSAGE"] {
        assert_eq!(
            judge(&req(stage, "2001:db8:b::10", &[]), Some(&snap), at(T0), &st),
            Reply::Dunno,
            "{stage}"
        );
    }
    // BDAT shows as DATA; lower case is the same stage.
    assert!(matches!(
        judge(
            &req("bdat", "2001:db8:b::10", &[]),
            Some(&snap),
            at(T0),
            &st
        ),
        Reply::Prepend(_)
    ));
}

#[test]
fn untrusted_ipv4_denied_and_garbage_addresses_are_rejected_with_the_reason() {
    let s = setup();
    let snap = snapshot(&s, None);
    let st = settings();
    let rej = |client: &str, stage: &str| {
        reject_text(judge(&req(stage, client, &[]), Some(&snap), at(T0), &st))
    };
    assert_eq!(
        rej("2001:db8:e::10", "RCPT"),
        "wotgate prefix check failed: 2001:db8:e::10 is in no network of a signed statement this server trusts; see https://mx.example/wotgate"
    );
    assert!(
        rej("2001:db8:e::10", "DATA").contains("no network"),
        "DATA rejects too"
    );
    assert!(rej("192.0.2.1", "RCPT").contains("client 192.0.2.1 is IPv4"));
    assert!(rej("2001:db8:a02:100::5", "RCPT").contains(
        "is in 2001:db8:a02:100::/56, denied by a refused key's statement for mallory.example"
    ));
    assert!(rej("unknown", "RCPT").contains("\"unknown\" is not an IP address"));
    // Outside mallory's /56 alpha's /40 answers (TLS required by its statement).
    assert!(rej("2001:db8:a02:200::5", "RCPT")
        .starts_with("wotgate tls-key check failed: no client certificate"));
    let r = judge(
        &req("RCPT", "2001:db8:e::10", &[]),
        Some(&snap),
        at(T0),
        &st,
    );
    assert!(r
        .to_wire()
        .starts_with("action=REJECT 5.7.1 wotgate prefix check failed"));
}

#[test]
fn alignment_of_sender_and_helo() {
    let s = setup();
    let snap = snapshot(&s, None);
    let mut st = settings();
    st.sender_alignment = true;
    st.helo_alignment = true;
    let j = |extra: &[&str]| {
        judge(
            &req("RCPT", "2001:db8:b::10", extra),
            Some(&snap),
            at(T0),
            &st,
        )
    };
    assert_eq!(j(&[]), Reply::Dunno);
    assert_eq!(
        j(&["sender=a@lists.beta.example", "helo_name=MX.Beta.Example."]),
        Reply::Dunno,
        "subdomain, any case, final dot"
    );
    assert_eq!(
        j(&["sender="]),
        Reply::Dunno,
        "a bounce is judged by its HELO"
    );
    assert!(reject_text(j(&["sender=a@other.example"]))
        .contains("sender check failed: envelope sender <a@other.example> is not in beta.example"));
    assert!(
        reject_text(j(&["sender=a@evilbeta.example"])).contains("sender check failed"),
        "a suffix is not a subdomain"
    );
    assert!(reject_text(j(&["helo_name=beta.example.evil.org"]))
        .contains("helo check failed: HELO name \"beta.example.evil.org\""));
    assert!(reject_text(j(&["sender=", "helo_name=x.org"]))
        .contains("null sender and HELO name \"x.org\""));
    let data = judge(
        &req("DATA", "2001:db8:b::10", &[]),
        Some(&snap),
        at(T0),
        &st,
    );
    assert!(
        matches!(&data, Reply::Prepend(h) if h.ends_with("policy.checks=\"prefix,sender,helo\"")),
        "{data:?}"
    );
}

#[test]
fn tls_binding_and_aead_policy() {
    let s = setup();
    let snap = snapshot(&s, None);
    let st = settings();
    let alpha = "2001:db8:a00:1::25";
    let fpr = format!("ccert_pubkey_fingerprint={}", s.alpha_tls.to_lowercase());
    let j = |extra: &[&str]| judge(&req("DATA", alpha, extra), Some(&snap), at(T0), &st);
    let tls13 = [
        "encryption_protocol=TLSv1.3",
        "encryption_cipher=TLS_AES_256_GCM_SHA384",
    ];
    let pass = j(&[fpr.as_str(), tls13[0], tls13[1]]);
    let Reply::Prepend(h) = &pass else {
        panic!("{pass:?}")
    };
    assert!(
        h.contains(&format!(
            "policy.domain=alpha.example policy.signer={} policy.depth=0",
            s.w.alpha.fpr().to_hex()
        )),
        "{h}"
    );
    assert!(
        h.ends_with("policy.checks=\"prefix,tls-key,tls-aead\""),
        "{h}"
    );
    let rej = |extra: &[&str]| reject_text(j(extra));
    assert!(rej(&tls13).contains(
        "tls-key check failed: no client certificate: alpha.example's statement lists TLS keys"
    ));
    let other = format!("ccert_pubkey_fingerprint={}", tls_key());
    assert!(rej(&[other.as_str(), tls13[0], tls13[1]])
        .contains("is not one of the TLS keys in alpha.example's statement"));
    let md5 = "ccert_pubkey_fingerprint=AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
    assert!(rej(&[md5, tls13[0], tls13[1]])
        .contains("MD5 certificate fingerprints; it needs smtpd_tls_fingerprint_digest = sha256"));
    assert!(rej(&["ccert_pubkey_fingerprint=zz", tls13[0], tls13[1]]).contains("is not SHA-256"));
    // TLS 1.2: AEAD suites pass, CBC ones (named without "CBC") do not.
    let gcm = j(&[
        fpr.as_str(),
        "encryption_protocol=TLSv1.2",
        "encryption_cipher=ECDHE-RSA-AES256-GCM-SHA384",
    ]);
    assert!(matches!(gcm, Reply::Prepend(_)), "{gcm:?}");
    let chacha = j(&[
        fpr.as_str(),
        "encryption_protocol=TLSv1.2",
        "encryption_cipher=ECDHE-ECDSA-CHACHA20-POLY1305",
    ]);
    assert!(matches!(chacha, Reply::Prepend(_)), "{chacha:?}");
    assert!(rej(&[fpr.as_str(), "encryption_protocol=TLSv1.2", "encryption_cipher=ECDHE-RSA-AES256-SHA384"]).contains("tls-aead check failed: TLSv1.2 with ECDHE-RSA-AES256-SHA384 is not TLS 1.2 or 1.3 with an AEAD cipher"));
    assert!(rej(&[
        fpr.as_str(),
        "encryption_protocol=TLSv1.1",
        "encryption_cipher=ECDHE-RSA-AES256-SHA"
    ])
    .contains("tls-aead"));
    assert!(rej(&[fpr.as_str()]).contains("tls-aead check failed: no TLS"));
    // tls_aead = "always" holds beta (no TLS keys) to it too; "never" lets alpha's CBC through.
    let mut always = settings();
    always.tls_aead = TlsAead::Always;
    assert!(reject_text(judge(
        &req("RCPT", "2001:db8:b::10", &[]),
        Some(&snap),
        at(T0),
        &always
    ))
    .contains("tls-aead check failed: no TLS"));
    let mut never = settings();
    never.tls_aead = TlsAead::Never;
    let cbc = judge(
        &req(
            "DATA",
            alpha,
            &[
                fpr.as_str(),
                "encryption_protocol=TLSv1.2",
                "encryption_cipher=AES256-SHA",
            ],
        ),
        Some(&snap),
        at(T0),
        &never,
    );
    assert!(
        matches!(&cbc, Reply::Prepend(h) if h.ends_with("checks=\"prefix,tls-key\"")),
        "{cbc:?}"
    );
}

#[test]
fn observe_labels_failures_and_temporary_trouble_defers_in_both_modes() {
    let s = setup();
    let snap = snapshot(&s, None);
    let mut st = settings();
    st.mode = PolicyMode::Observe;
    assert_eq!(
        judge(
            &req("RCPT", "2001:db8:e::10", &[]),
            Some(&snap),
            at(T0),
            &st
        ),
        Reply::Dunno
    );
    let r = judge(
        &req("DATA", "2001:db8:e::10", &[]),
        Some(&snap),
        at(T0),
        &st,
    );
    assert_eq!(
        r,
        Reply::Prepend("Authentication-Results: mx.example; x-wot=fail reason=\"prefix: 2001:db8:e::10 is in no network of a signed statement this server trusts\" policy.remote-ip=\"2001:db8:e::10\"".into())
    );
    let alpha = judge(
        &req("DATA", "2001:db8:a00::1", &[]),
        Some(&snap),
        at(T0),
        &st,
    );
    assert!(
        matches!(&alpha, Reply::Prepend(h) if h.contains("x-wot=fail reason=\"tls-key: no client certificate") && h.contains("policy.domain=alpha.example") && h.ends_with("policy.depth=0")),
        "{alpha:?}"
    );
    for mode in [PolicyMode::Observe, PolicyMode::Enforce] {
        st.mode = mode;
        for stage in ["RCPT", "DATA"] {
            let none = judge(&req(stage, "2001:db8:b::10", &[]), None, at(T0), &st);
            assert_eq!(none, Reply::Defer("wotgate: no trust state yet (the first refresh has not succeeded); try again later".into()));
            assert!(none
                .to_wire()
                .starts_with("action=DEFER_IF_PERMIT 4.7.1 wotgate:"));
            let stale = judge(
                &req(stage, "2001:db8:b::10", &[]),
                Some(&snap),
                at(T0 + 3601),
                &st,
            );
            assert_eq!(stale, Reply::Defer("wotgate: the trust state is 3601 s old, older than policy.max_state_age; try again later".into()));
        }
        let other =
            Request::parse(b"request=junk\nclient_address=2001:db8:b::10\n\n", LIMITS).unwrap();
        assert!(
            matches!(judge(&other, Some(&snap), at(T0), &st), Reply::Defer(t) if t.contains("unsupported request type \"junk\""))
        );
    }
    // An expired statement no longer passes even before the refresh at its expiry.
    st.mode = PolicyMode::Enforce;
    let late = at(T0 + 30 * DAY);
    let mut snap_late = snapshot(&s, None);
    snap_late.built_at = late;
    assert!(reject_text(judge(
        &req("RCPT", "2001:db8:b::10", &[]),
        Some(&snap_late),
        late,
        &st
    ))
    .contains("the statement of beta.example expired"));
}

#[test]
fn static_overrides_answer_as_in_the_gate() {
    let s = setup();
    let o = PrefixSet::parse(
        "deny 2001:db8:b:bad::/64 op\nallow 2001:db8:f::/48 relay\nallow 2001:db8:b::/48 op\n",
        "static",
    )
    .unwrap();
    let snap = snapshot(&s, Some(&o));
    let st = settings();
    assert!(reject_text(judge(
        &req("RCPT", "2001:db8:b:bad::1", &[]),
        Some(&snap),
        at(T0),
        &st
    ))
    .contains("denied by the operator"));
    let relay = judge(&req("DATA", "2001:db8:f::1", &[]), Some(&snap), at(T0), &st);
    assert!(
        matches!(&relay, Reply::Prepend(h) if h.contains("policy.source=static policy.checks=\"prefix\"")),
        "{relay:?}"
    );
    // The statement's entry at the same prefix keeps its provenance.
    let beta = judge(&req("DATA", "2001:db8:b::1", &[]), Some(&snap), at(T0), &st);
    assert!(
        matches!(&beta, Reply::Prepend(h) if h.contains("policy.domain=beta.example")),
        "{beta:?}"
    );
}

#[test]
fn a_million_prefixes_build_once_and_answer_fast() {
    let claims: Vec<Claim> = (0..1000)
        .map(|i| Claim {
            domain: format!("p{i}.example"),
            signer: format!("{i:040X}"),
            depth: Some(1),
            serial: 1,
            not_after: u64::MAX,
            tls_keys: vec![],
            testing: false,
        })
        .collect();
    let n = 1_000_000u32;
    let net = |i: u32| -> ipnet::Ipv6Net {
        let a = 0x2a00u128 << 112 | u128::from(i) << 64;
        ipnet::Ipv6Net::new(a.into(), 64).unwrap()
    };
    let mut items: Vec<SnapshotEntry> = (0..n)
        .map(|i| SnapshotEntry {
            prefix: net(i),
            verdict: Verdict::Allow,
            claims: vec![i % 1000],
        })
        .collect();
    // Denies inside every thousandth /64, and covering /48s.
    items.extend((0..n).step_by(1000).map(|i| SnapshotEntry {
        prefix: ipnet::Ipv6Net::new(net(i).network(), 80).unwrap(),
        verdict: Verdict::Deny,
        claims: vec![],
    }));
    items.push(SnapshotEntry {
        prefix: "2a00::/16".parse().unwrap(),
        verdict: Verdict::Deny,
        claims: vec![],
    });
    let t = Instant::now();
    let snap = TrustSnapshot::build(SystemTime::now(), claims, items);
    let built = t.elapsed();
    assert_eq!(snap.len(), 1_001_001);
    let t = Instant::now();
    let mut allowed = 0;
    for i in (0..n).step_by(7) {
        let host = u128::from(net(i).network()) | 0xdead_beef_0000_0001;
        let m = snap.lookup(host.into()).unwrap();
        if m.verdict == Verdict::Allow {
            assert_eq!(m.claims[0].domain, format!("p{}.example", i % 1000));
            allowed += 1;
        }
        // The first /80 of every thousandth /64 is denied.
        let first = snap
            .lookup((u128::from(net(i).network()) | 1).into())
            .unwrap();
        assert_eq!(first.verdict == Verdict::Deny, i % 1000 == 0, "{i}");
    }
    let per = t.elapsed() / (2 * n.div_ceil(7));
    assert!(allowed > 100_000);
    assert_eq!(
        snap.lookup("2a00:ffff::1".parse().unwrap())
            .unwrap()
            .verdict,
        Verdict::Deny
    );
    assert!(snap.lookup("2a01::1".parse().unwrap()).is_none());
    eprintln!("1,001,001 entries: built in {built:?}, {per:?} per lookup");
    assert!(per < Duration::from_micros(50), "{per:?} per lookup");
}
