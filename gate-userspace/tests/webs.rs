//! Per-recipient webs of trust from real keys, real certifications and the
//! real engine: each web's accepted statements, the gate's union set, and
//! per-recipient verdicts at RCPT with one label at DATA.

mod statement_fixtures;

use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime};

use sequoia_openpgp::policy::StandardPolicy;
use statement_fixtures::*;
use wotgate::apply::{prepare, Prepared};
use wotgate::model::config::{PolicyMode, TlsAead};
use wotgate::model::prefixes::{PrefixSet, Verdict};
use wotgate::model::settings::TrustSettings;
use wotgate::plan::TestingPolicy;
use wotgate::policy::recipients::RecipientLog;
use wotgate::policy::verdict::judge_logged;
use wotgate::policy::{Limits, Reply, Request, TrustSnapshot, VerdictSettings};
use wotgate::source::Named;
use wotgate::statement::{Acceptor, SerialState, WotView};
use wotgate::webs::{Webs, SYSTEM_WEB};
use wotgate::wot::{Keyring, SharedGraph, VerifyCache};

/// The cast. The system trusts `sys_root`, refuses mallory and ignores
/// `intro`'s certifications; alice's own web (replace) trusts `alice_root`
/// only, refuses nobody and ignores nobody; `example.net`'s web extends the
/// system's by refusing `peer_s`.
///
/// - `peer_s` (certified by `sys_root`): 2001:db8:5::/48
/// - mallory (certified by both roots): 2001:db8:5:100::/56, inside `peer_s`
/// - `peer_a` (certified by `alice_root`): 2001:db8:a::/48
/// - `peer_i` (certified by `intro`, which both roots certified): 2001:db8:1::/48
struct Cast {
    prepared: Prepared,
    webs: Webs,
}

fn cast() -> Cast {
    let sys_root = Key::new("Root <root@mx.example>");
    let alice_root = Key::new("Alice <alice@mx.example>");
    let peer_s = Key::new("peer-s.example");
    let mallory = Key::new("mallory.example");
    let peer_a = Key::new("peer-a.example");
    let intro = Key::new("Introducer <ca@intro.example>");
    let peer_i = Key::new("peer-i.example");
    let ring = Keyring::from_certs([
        sys_root.public(),
        alice_root.public(),
        certify(&sys_root, &peer_s),
        certify(&sys_root, &mallory),
        certify(&alice_root, &mallory),
        certify(&alice_root, &peer_a),
        certify(&sys_root, &intro),
        certify(&alice_root, &intro),
        certify(&intro, &peer_i),
    ]);
    let files: Vec<Named> = [
        (
            "s.asc",
            &peer_s,
            statement("peer-s.example", 1, &["2001:db8:5::/48"]),
        ),
        (
            "m.asc",
            &mallory,
            statement("mallory.example", 1, &["2001:db8:5:100::/56"]),
        ),
        (
            "a.asc",
            &peer_a,
            statement("peer-a.example", 1, &["2001:db8:a::/48"]),
        ),
        (
            "i.asc",
            &peer_i,
            statement("peer-i.example", 1, &["2001:db8:1::/48"]),
        ),
    ]
    .into_iter()
    .map(|(f, k, st)| Named {
        origin: f.into(),
        bytes: k.sign(&st),
    })
    .collect();
    let mut system = TrustSettings::new([sys_root.fpr()], at(T0));
    system.refuse.insert(mallory.fpr());
    system.ignore_certifications_by.insert(intro.fpr());
    let alice = TrustSettings::new([alice_root.fpr()], at(T0));
    let mut net = system.clone();
    net.refuse.insert(peer_s.fpr());
    let defs = vec![
        (SYSTEM_WEB.to_string(), system.clone()),
        ("alice@mx.example".to_string(), alice),
        ("example.net".to_string(), net),
    ];
    let p = StandardPolicy::new();
    let mut cache = VerifyCache::new();
    let (view, _) = WotView::evaluate_cached(ring, &system, &p, &mut cache);
    let rules = test_rules();
    let state = SerialState::default();
    let prepared = prepare(
        &rules,
        TestingPolicy::Allow,
        &view,
        &files,
        state.clone(),
        &p,
        at(T0),
        vec![],
    )
    .unwrap();
    let graph = SharedGraph::build(&view.keyring, &p, at(T0), &system.limits, &mut cache);
    let acceptor = Acceptor {
        rules: &rules,
        trust: &view,
        policy: &p,
        at: at(T0),
        state: &state,
    };
    let webs = Webs::judge(
        &acceptor,
        files
            .iter()
            .map(|n| (n.origin.as_str(), n.bytes.as_slice())),
        &graph,
        &defs,
        TestingPolicy::Allow,
    );
    Cast { prepared, webs }
}

/// Per web: (domain, allow/deny, depth) of what it accepted, sorted.
fn accepted(webs: &Webs, w: usize) -> Vec<(String, Verdict, Option<usize>)> {
    let mut v: Vec<_> = webs.roles[w]
        .iter()
        .map(|r| {
            (
                webs.candidates[r.candidate].statement.domain.clone(),
                r.verdict,
                r.depth,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn each_web_accepts_by_its_own_roots_refusals_and_ignores() {
    let c = cast();
    let (a, d) = (Verdict::Allow, Verdict::Deny);
    assert_eq!(
        accepted(&c.webs, 0),
        vec![
            ("mallory.example".into(), d, None),
            ("peer-s.example".into(), a, Some(1)),
        ],
        "system: mallory refused, intro's certification of peer-i ignored, peer-a unknown"
    );
    assert_eq!(
        accepted(&c.webs, 1),
        vec![
            ("mallory.example".into(), a, Some(1)),
            ("peer-a.example".into(), a, Some(1)),
            ("peer-i.example".into(), a, Some(2)),
        ],
        "alice: mallory trusted, intro introduces, peer-s unknown"
    );
    assert_eq!(
        accepted(&c.webs, 2),
        vec![
            ("mallory.example".into(), d, None),
            ("peer-s.example".into(), d, None),
        ],
        "example.net extends the system's web and also refuses peer-s"
    );
    // The system web of the many-web path is the single-web plan's.
    let single: Vec<_> = c
        .prepared
        .judgements
        .iter()
        .filter_map(|j| j.result.as_ref().ok())
        .map(|a| (a.statement.domain.clone(), a.role, a.depth))
        .collect();
    assert_eq!(single, accepted(&c.webs, 0));
}

#[test]
fn the_gate_admits_the_union_and_denies_only_where_every_web_denies() {
    let c = cast();
    let u = c.webs.union_set().unwrap();
    let v = |a: &str| u.lookup(a.parse().unwrap()).map(|e| e.verdict);
    assert_eq!(v("2001:db8:5::1"), Some(Verdict::Allow), "system allows");
    assert_eq!(
        v("2001:db8:5:100::1"),
        Some(Verdict::Allow),
        "mallory: denied by the system, allowed by alice"
    );
    assert_eq!(v("2001:db8:a::1"), Some(Verdict::Allow), "alice only");
    assert_eq!(v("2001:db8:1::1"), Some(Verdict::Allow), "alice only");
    assert_eq!(v("2001:db8:e::1"), None, "nobody");
    let label = |a: &str| u.lookup(a.parse().unwrap()).unwrap().label.clone();
    assert!(label("2001:db8:a::1").contains("web=alice@mx.example"));
    assert!(
        !label("2001:db8:5::1").contains("web="),
        "{}",
        label("2001:db8:5::1")
    );
    // Without alice, mallory's /56 is a deny inside peer-s's allow.
    let mut sys_net = c.webs.clone();
    sys_net.roles.remove(1);
    sys_net.names.remove(1);
    let u2 = sys_net.union_set().unwrap();
    assert_eq!(
        u2.lookup("2001:db8:5:100::1".parse().unwrap())
            .map(|e| e.verdict),
        Some(Verdict::Deny),
        "denied in every web (the system's and example.net's)"
    );
    for p in [
        "2001:db8:5::1",
        "2001:db8:5:100::1",
        "2001:db8:a::1",
        "2001:db8:e::1",
    ] {
        let a: Ipv6Addr = p.parse().unwrap();
        assert_eq!(
            u2.lookup(a)
                .map(|e| e.verdict == Verdict::Allow)
                .unwrap_or(false),
            c.prepared
                .set
                .lookup(a)
                .map(|e| e.verdict == Verdict::Allow)
                .unwrap_or(false),
            "{p}: a web that only refuses more adds nothing to the system's"
        );
    }
}

/// Compares the union's answer with each web's own longest match for many
/// addresses: allowed iff some web allows.
#[test]
fn union_equals_the_or_of_every_webs_answer() {
    let c = cast();
    let u = c.webs.union_set().unwrap();
    let snap = snapshot(&c);
    let idx = snap.webs.as_ref().unwrap();
    let probes = [
        "2001:db8:5::1",
        "2001:db8:5:100::1",
        "2001:db8:5:1ff::1",
        "2001:db8:5:200::1",
        "2001:db8:a::1",
        "2001:db8:1::1",
        "2001:db8:2::1",
    ];
    for p in probes {
        let a: Ipv6Addr = p.parse().unwrap();
        let any =
            (0..idx.len()).any(|w| idx.lookup(a, w).map(|m| m.verdict) == Some(Verdict::Allow));
        let gate = u.lookup(a).map(|e| e.verdict) == Some(Verdict::Allow);
        assert_eq!(gate, any, "{p}");
    }
}

fn snapshot(c: &Cast) -> TrustSnapshot {
    let prepared = Prepared {
        plan: c.prepared.plan.clone(),
        judgements: c.prepared.judgements.clone(),
        set: c.prepared.set.clone(),
        problems: vec![],
        state: c.prepared.state.clone(),
        trusted_keys: 0,
        webs: Some(c.webs.clone()),
        key_expiry: None,
    };
    TrustSnapshot::from_prepared(&prepared, None::<&PrefixSet>, at(T0))
}

fn settings(mode: PolicyMode) -> VerdictSettings {
    VerdictSettings {
        authserv_id: "mx.example".into(),
        mode,
        header_name: "Authentication-Results".into(),
        max_state_age: Duration::from_secs(3600),
        sender_alignment: false,
        helo_alignment: false,
        tls_aead: TlsAead::Auto,
        policy_url: None,
    }
}

fn req(stage: &str, client: &str, rcpt: &str, instance: &str) -> Request {
    let t = format!(
        "request=smtpd_access_policy\nprotocol_state={stage}\nclient_address={client}\nhelo_name=mx.peer.example\nsender=a@peer.example\nrecipient={rcpt}\ninstance={instance}\n\n"
    );
    Request::parse(
        t.as_bytes(),
        Limits {
            max_request_bytes: 16384,
            max_attributes: 64,
        },
    )
    .unwrap()
}

fn now() -> SystemTime {
    at(T0) + Duration::from_secs(1)
}

#[test]
fn one_session_is_accepted_for_alice_and_rejected_for_bob() {
    let c = cast();
    let snap = snapshot(&c);
    let s = settings(PolicyMode::Enforce);
    let log = RecipientLog::new(100);
    let j = |stage, client, rcpt, inst| {
        judge_logged(
            &req(stage, client, rcpt, inst),
            Some(&snap),
            now(),
            &s,
            &log,
        )
    };
    // peer-a: alice's web only.
    assert_eq!(
        j("RCPT", "2001:db8:a::25", "Alice@MX.example", "T1"),
        Reply::Dunno
    );
    match j("RCPT", "2001:db8:a::25", "bob@mx.example", "T1") {
        Reply::Reject(t) => {
            assert!(t.contains("recipient <bob@mx.example>"), "{t}");
            assert!(t.contains("this server's web of trust"), "{t}");
        }
        other => panic!("bob: {other:?}"),
    }
    match j("DATA", "2001:db8:a::25", "", "T1") {
        Reply::Prepend(h) => {
            assert_eq!(h.matches("x-wot=").count(), 1, "{h}");
            assert!(
                h.starts_with(
                    "Authentication-Results: mx.example; x-wot=pass policy.web=alice@mx.example "
                ),
                "{h}"
            );
            assert!(h.contains("policy.domain=peer-a.example"), "{h}");
            assert!(h.contains("policy.depth=1"), "{h}");
        }
        other => panic!("DATA: {other:?}"),
    }
    assert!(log.is_empty(), "DATA takes the transaction's results");
    // mallory: refused by the system (a deny inside peer-s), trusted by alice.
    assert_eq!(
        j("RCPT", "2001:db8:5:100::9", "alice@mx.example", "T2"),
        Reply::Dunno
    );
    match j("RCPT", "2001:db8:5:100::9", "bob@mx.example", "T2") {
        Reply::Reject(t) => assert!(
            t.contains("refused key's statement for mallory.example"),
            "{t}"
        ),
        other => panic!("bob from mallory: {other:?}"),
    }
    // A whole-domain web: example.net's users refuse peer-s too.
    assert_eq!(
        j("RCPT", "2001:db8:5::7", "bob@mx.example", "T3"),
        Reply::Dunno
    );
    assert!(matches!(
        j("RCPT", "2001:db8:5::7", "carol@EXAMPLE.net", "T3"),
        Reply::Reject(_)
    ));
    // A message for bob and alice from peer-s: alice's web does not know peer-s.
    assert!(matches!(
        j("RCPT", "2001:db8:5::7", "alice@mx.example", "T3"),
        Reply::Reject(_)
    ));
    match j("DATA", "2001:db8:5::7", "", "T3") {
        Reply::Prepend(h) => {
            assert_eq!(h.matches("x-wot=").count(), 1, "{h}");
            assert!(
                !h.contains("policy.web="),
                "the system web admitted it: {h}"
            );
        }
        other => panic!("DATA T3: {other:?}"),
    }
    // An extension is the same user; the domain web answers for the rest.
    assert_eq!(
        j("RCPT", "2001:db8:a::25", "alice+lists@mx.example", "T7"),
        Reply::Dunno
    );
    let idx = snap.webs.as_ref().unwrap();
    assert_eq!(
        idx.web_for("bob+x@example.net").map(|w| idx.name(w)),
        Some("example.net")
    );
    assert_eq!(
        idx.web_for("bob@sub.example.net"),
        None,
        "a subdomain is not the domain"
    );
    assert_eq!(
        idx.web_for("system"),
        None,
        "the system web is no recipient"
    );
    // Trusted by nobody.
    assert!(matches!(
        j("RCPT", "2001:db8:e::1", "alice@mx.example", "T4"),
        Reply::Reject(_)
    ));
}

#[test]
fn observe_labels_each_recipients_result_in_one_header() {
    let c = cast();
    let snap = snapshot(&c);
    let s = settings(PolicyMode::Observe);
    let log = RecipientLog::new(100);
    let j = |stage, rcpt| {
        judge_logged(
            &req(stage, "2001:db8:a::25", rcpt, "T9"),
            Some(&snap),
            now(),
            &s,
            &log,
        )
    };
    assert_eq!(j("RCPT", "alice@mx.example"), Reply::Dunno);
    assert_eq!(j("RCPT", "bob@mx.example"), Reply::Dunno);
    assert_eq!(j("RCPT", "dave@mx.example"), Reply::Dunno);
    match j("DATA", "") {
        Reply::Prepend(h) => {
            assert_eq!(h.matches("Authentication-Results:").count(), 1, "{h}");
            assert!(h.contains("x-wot=pass policy.web=alice@mx.example"), "{h}");
            assert_eq!(
                h.matches("x-wot=fail reason=").count(),
                1,
                "bob and dave share the system's result: {h}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_recipient_webs_rcpt_and_data_are_as_before() {
    let c = cast();
    let snap = TrustSnapshot::from_prepared(&c.prepared, None, at(T0));
    assert!(!snap.has_recipient_webs());
    let s = settings(PolicyMode::Enforce);
    let log = RecipientLog::new(100);
    let r = judge_logged(
        &req("RCPT", "2001:db8:a::25", "alice@mx.example", "T5"),
        Some(&snap),
        now(),
        &s,
        &log,
    );
    assert!(matches!(r, Reply::Reject(_)), "{r:?}");
    let r = judge_logged(
        &req("DATA", "2001:db8:5::1", "", "T6"),
        Some(&snap),
        now(),
        &s,
        &log,
    );
    assert!(matches!(r, Reply::Prepend(_)), "{r:?}");
    assert!(log.is_empty());
}
