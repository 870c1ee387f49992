//! The plan from accepted statements: overlaps, deny inside allow, folding,
//! testing mode, kernel labels, diff and determinism.

mod statement_fixtures;

use sequoia_openpgp::policy::StandardPolicy;
use statement_fixtures::*;
use wotgate::model::prefixes::{PrefixSet, Verdict};
use wotgate::plan::{Plan, PlanDiff, TestingPolicy};
use wotgate::statement::{Acceptor, Mode, SerialState};

fn plan_of(w: &World, files: &[(&str, Vec<u8>)], testing: TestingPolicy) -> Plan {
    let p = StandardPolicy::new();
    let rules = test_rules();
    let state = SerialState::default();
    let acc = Acceptor {
        rules: &rules,
        trust: &w.view,
        policy: &p,
        at: at(T0),
        state: &state,
    };
    let js = acc.judge_all(files.iter().map(|(n, b)| (*n, b.as_slice())));
    let ok: Vec<_> = js
        .iter()
        .filter_map(|j| j.result.as_ref().ok().cloned())
        .collect();
    let bad: Vec<_> = js
        .iter()
        .filter_map(|j| j.result.as_ref().err().cloned())
        .collect();
    Plan::build("2026-11-25T10:00:00Z", &ok, bad, testing)
}

fn inputs(w: &World) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        // alpha's /40 covers beta's /48 (overlap between entities) ...
        (
            "alpha.asc",
            w.alpha.sign(&statement(
                "alpha.example",
                7,
                &["2001:db8:a00::/40", "2001:db8:a10::/48"],
            )),
        ),
        (
            "beta.asc",
            w.beta.sign(&statement(
                "beta.example",
                3,
                &["2001:db8:a01::/48", "2001:db8:a10::/48"],
            )),
        ),
        // ... and refused mallory's /56 sits inside alpha's /40.
        (
            "mallory.asc",
            w.mallory
                .sign(&statement("mallory.example", 1, &["2001:db8:a02:100::/56"])),
        ),
        (
            "eve.asc",
            w.eve
                .sign(&statement("eve.example", 1, &["2001:db8:e::/48"])),
        ),
    ]
}

#[test]
fn overlap_deny_inside_allow_and_folding() {
    let w = World::new();
    let plan = plan_of(&w, &inputs(&w), TestingPolicy::Allow);
    assert_eq!(plan.accepted_statements, 3);
    assert_eq!(plan.rejected.len(), 1);
    assert_eq!(plan.rejected[0].file, "eve.asc");
    let get = |p: &str| {
        plan.entries
            .iter()
            .find(|e| e.prefix == p.parse().unwrap())
            .unwrap()
    };
    // Both entities' provenance for the shared /48, folded into alpha's /40.
    let shared = get("2001:db8:a10::/48");
    assert_eq!(
        shared
            .provenance
            .iter()
            .map(|p| p.domain.as_str())
            .collect::<Vec<_>>(),
        ["alpha.example", "beta.example"]
    );
    assert_eq!(
        shared.folded_into,
        Some("2001:db8:a00::/40".parse().unwrap())
    );
    assert_eq!(
        get("2001:db8:a01::/48").folded_into,
        Some("2001:db8:a00::/40".parse().unwrap())
    );
    let deny = get("2001:db8:a02:100::/56");
    assert_eq!(
        (deny.verdict, deny.folded_into, deny.provenance[0].depth),
        (Verdict::Deny, None, None)
    );

    let set = plan.to_prefix_set().unwrap();
    assert_eq!(set.len(), 2, "{}", set.to_file_text());
    let v = |a: &str| set.lookup(a.parse().unwrap()).map(|e| e.verdict);
    assert_eq!(v("2001:db8:a01::1"), Some(Verdict::Allow));
    assert_eq!(v("2001:db8:a10::1"), Some(Verdict::Allow));
    assert_eq!(v("2001:db8:a02:1ff::1"), Some(Verdict::Deny));
    assert_eq!(v("2001:db8:a02:200::1"), Some(Verdict::Allow));
    assert_eq!(v("2001:db8:e::1"), None);
    // Every kernel label fits and starts with the domain.
    let alpha = set.get(&"2001:db8:a00::/40".parse().unwrap()).unwrap();
    assert_eq!(
        alpha.label,
        format!("alpha.example s7 d0 {}", &w.alpha.fpr().to_hex()[..16])
    );
    assert!(set
        .iter()
        .all(|e| e.label.len() <= wotgate::model::prefixes::MAX_LABEL));
    // The kernel set survives the gate's own prefix-file parser.
    assert_eq!(PrefixSet::parse(&set.to_file_text(), "plan").unwrap(), set);

    let text = plan.to_text();
    assert!(text.contains("allow 2001:db8:a10::/48 (folded into 2001:db8:a00::/40)\n    from alpha.example serial=7 depth=0"), "{text}");
    assert!(
        text.contains("    from beta.example serial=3 depth=1 mode=enforce"),
        "{text}"
    );
    assert!(
        text.contains("deny 2001:db8:a02:100::/56\n    from mallory.example serial=1 refused"),
        "{text}"
    );
    assert!(
        text.contains("# rejected eve.asc: eve.example: rejected by rule untrusted-signer"),
        "{text}"
    );
}

#[test]
fn deny_wins_on_the_same_prefix_and_is_not_folded_under_allow() {
    let w = World::new();
    let files = vec![
        (
            "a.asc",
            w.alpha
                .sign(&statement("alpha.example", 1, &["2001:db8:a::/48"])),
        ),
        (
            "m.asc",
            w.mallory.sign(&statement(
                "mallory.example",
                1,
                &["2001:db8:a::/48", "2001:db8:a:1::/64"],
            )),
        ),
    ];
    let plan = plan_of(&w, &files, TestingPolicy::Allow);
    let e = &plan.entries[0];
    assert_eq!((e.verdict, e.overridden.len()), (Verdict::Deny, 1));
    // The /64 deny under the /48 deny folds; nothing allows.
    assert_eq!(
        plan.entries[1].folded_into,
        Some("2001:db8:a::/48".parse().unwrap())
    );
    let set = plan.to_prefix_set().unwrap();
    assert_eq!(set.len(), 1);
    assert!(plan
        .to_text()
        .contains("overridden allow from alpha.example"));
}

#[test]
fn testing_mode_allowed_or_counted() {
    let w = World::new();
    let mut st = statement("beta.example", 3, &["2001:db8:b::/48"]);
    st.mode = Mode::Testing;
    let files = vec![("beta.asc", w.beta.sign(&st))];
    let allowed = plan_of(&w, &files, TestingPolicy::Allow);
    let set = allowed.to_prefix_set().unwrap();
    assert!(
        set.iter().next().unwrap().label.ends_with(" testing"),
        "{}",
        set.to_file_text()
    );
    let counted = plan_of(&w, &files, TestingPolicy::Count);
    assert!(counted.entries.is_empty());
    assert_eq!(counted.counted.len(), 1);
    assert!(counted.to_prefix_set().unwrap().is_empty());
    assert!(counted
        .to_text()
        .contains("count 2001:db8:b::/48\n    from beta.example serial=3 depth=1 mode=testing"));
}

#[test]
fn plan_is_deterministic() {
    let w = World::new();
    let mut files = inputs(&w);
    let a = plan_of(&w, &files, TestingPolicy::Allow);
    files.reverse();
    let b = plan_of(&w, &files, TestingPolicy::Allow);
    assert_eq!(a.to_text(), b.to_text());
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(
        a.to_prefix_set().unwrap().to_file_text(),
        b.to_prefix_set().unwrap().to_file_text()
    );
    // Re-signing (new signatures, same statements) changes nothing either.
    let c = plan_of(&w, &inputs(&w), TestingPolicy::Allow);
    assert_eq!(a.to_json(), c.to_json());
}

#[test]
fn diff_against_loaded_set() {
    let w = World::new();
    let plan = plan_of(&w, &inputs(&w), TestingPolicy::Allow);
    let new = plan.to_prefix_set().unwrap();
    assert!(plan.diff(&new).unwrap().is_empty());
    let loaded = PrefixSet::parse(
        "allow 2001:db8:a00::/40 old label\nallow 2001:db8:5::/48 gone\n",
        "loaded",
    )
    .unwrap();
    let d: PlanDiff = plan.diff(&loaded).unwrap();
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].prefix, "2001:db8:a02:100::/56".parse().unwrap());
    assert_eq!(d.removed[0].label, "gone");
    assert_eq!(d.changed.len(), 1);
    let text = d.to_text();
    assert!(
        text.contains("+ deny 2001:db8:a02:100::/56 mallory.example refused s1"),
        "{text}"
    );
    assert!(text.contains("- allow 2001:db8:5::/48 gone"), "{text}");
}

#[test]
fn large_plans_fold_in_order() {
    // A synthetic plan: 4096 /64s under 16 /48s under one /40, one deny.
    let w = World::new();
    let outer: Vec<String> = vec!["2001:db8:100::/40".into()];
    let mids: Vec<String> = (0..16).map(|i| format!("2001:db8:1{i:02x}::/48")).collect();
    let mut files = vec![
        (
            "o.asc",
            w.alpha.sign(&statement(
                "alpha.example",
                1,
                &outer.iter().map(String::as_str).collect::<Vec<_>>(),
            )),
        ),
        (
            "m.asc",
            w.beta.sign(&statement(
                "beta.example",
                1,
                &mids.iter().map(String::as_str).collect::<Vec<_>>(),
            )),
        ),
    ];
    files.push((
        "x.asc",
        w.mallory.sign(&statement(
            "mallory.example",
            1,
            &["2001:db8:105:8000::/49"],
        )),
    ));
    let plan = plan_of(&w, &files, TestingPolicy::Allow);
    assert_eq!(plan.entries.len(), 18);
    let set = plan.to_prefix_set().unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(
        set.lookup("2001:db8:105:8000::5".parse().unwrap())
            .unwrap()
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        set.lookup("2001:db8:105:7fff::5".parse().unwrap())
            .unwrap()
            .verdict,
        Verdict::Allow
    );
}
