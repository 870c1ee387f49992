//! The verification cache never changes a verdict: every fixture network
//! gives the same report cold, parallel or sequential, warm from the saved
//! file, with a corrupted file, with a cache filled under another policy, and
//! after a key's revocation is added.

mod statement_fixtures;
mod wot_common;

use openpgp::cert::prelude::*;
use openpgp::policy::{NullPolicy, StandardPolicy};
use openpgp::types::ReasonForRevocation;
use sequoia_openpgp as openpgp;
use statement_fixtures::{at, certify, Key, DAY, T0};
use std::sync::Arc;
use wot_common::*;
use wotgate::wot::{
    evaluate_cached, evaluate_lazy, KeyStatus, KeyTrust, Keyring, SharedGraph, TrustSettings,
    VerifyCache, VERIFY_CACHE_FILE,
};

fn keys(r: &wotgate::wot::TrustReport) -> Vec<KeyTrust> {
    r.keys().cloned().collect()
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wotgate-wot-cache-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn every_fixture_gives_the_same_report_whatever_the_cache() {
    let p = StandardPolicy::new();
    let dir = tmpdir("fixtures");
    let mut cases = certification_cases();
    cases.extend(tsig_cases());
    let mut checked = 0;
    for c in &cases {
        let net = Net::load(c.net);
        let s = net.settings(c);
        let seq = evaluate_cached(&net.ring, &s, &p, &mut VerifyCache::sequential());
        assert!(
            check(&net, c, &seq).is_empty(),
            "{}: {:?}",
            c.net,
            check(&net, c, &seq)
        );
        let mut cache = VerifyCache::new();
        let par = evaluate_cached(&net.ring, &s, &p, &mut cache);
        assert_eq!(keys(&par), keys(&seq), "{}: parallel vs sequential", c.net);
        assert_eq!(par.stats.verified, seq.stats.verified, "{}", c.net);

        // Warm, from the file a previous process saved.
        cache.save(&dir).unwrap();
        let (mut warm, why) = VerifyCache::load(&dir);
        assert!(why.is_none(), "{why:?}");
        let w = evaluate_cached(&net.ring, &s, &p, &mut warm);
        assert_eq!(w.stats.verified, 0, "{}: warm verifies nothing", c.net);
        assert_eq!(w.stats.cache_hits, seq.stats.verified, "{}", c.net);
        assert_eq!(keys(&w), keys(&seq), "{}: warm", c.net);

        // A corrupted file is ignored, and the result is the same.
        let file = dir.join(VERIFY_CACHE_FILE);
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&file, &bytes).unwrap();
        let (mut broken, why) = VerifyCache::load(&dir);
        assert!(why.is_some() && broken.is_empty());
        let b = evaluate_cached(&net.ring, &s, &p, &mut broken);
        assert_eq!(keys(&b), keys(&seq), "{}: corrupted cache", c.net);

        // Filled under another policy (one that accepts everything, SHA-1
        // included) and saved: the standard policy's verdicts are unchanged.
        let mut other = VerifyCache::new();
        let null = unsafe { NullPolicy::new() };
        evaluate_cached(&net.ring, &s, &null, &mut other);
        other.save(&dir).unwrap();
        let (mut other, _) = VerifyCache::load(&dir);
        let o = evaluate_cached(&net.ring, &s, &p, &mut other);
        assert_eq!(keys(&o), keys(&seq), "{}: cache from another policy", c.net);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixture cases");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon's lazy computation (verifying only what a search or an
/// explanation needs) answers exactly as the full report, whatever order
/// the keys are asked in, cold or warm, sequential or parallel.
#[test]
fn lazy_verdicts_equal_the_full_report_on_every_fixture() {
    let p = StandardPolicy::new();
    let mut cases = certification_cases();
    cases.extend(tsig_cases());
    for c in &cases {
        let net = Net::load(c.net);
        let s = net.settings(c);
        let full = evaluate_cached(&net.ring, &s, &p, &mut VerifyCache::sequential());
        let want = keys(&full);
        let ring = Arc::new(net.ring.clone());
        for (cache, reverse) in [
            (VerifyCache::new(), true),
            (VerifyCache::sequential(), false),
        ] {
            let lazy = evaluate_lazy(ring.clone(), &s, &p, &cache);
            assert!(
                lazy.stats.verified <= full.stats.verified,
                "{}: the deciding search verifies at most what the report does",
                c.net
            );
            assert_eq!(
                lazy.trusted_count(),
                want.iter().filter(|k| k.status.is_trusted()).count(),
                "{}",
                c.net
            );
            for k in &want {
                assert_eq!(lazy.is_trusted(&k.fingerprint), k.status.is_trusted());
            }
            // Explanations asked one key at a time, in either order.
            let order: Vec<&KeyTrust> = if reverse {
                want.iter().rev().collect()
            } else {
                want.iter().collect()
            };
            for k in order {
                assert_eq!(lazy.key(&k.fingerprint), Some(k), "{}: lazy key", c.net);
            }
            assert_eq!(keys(&lazy), want, "{}: lazy report", c.net);
            // Warm: the same answers, nothing verified again.
            let warm = evaluate_lazy(ring.clone(), &s, &p, &cache);
            assert_eq!(warm.stats.verified, 0, "{}: warm lazy", c.net);
            assert_eq!(keys(&warm), want, "{}: warm lazy report", c.net);
        }
    }
}

/// Recipient webs search the system web's lazy graph: the same standings
/// as a graph of their own, for every fixture and every key.
#[test]
fn webs_on_the_report_graph_equal_webs_on_their_own() {
    let p = StandardPolicy::new();
    let mut cases = certification_cases();
    cases.extend(tsig_cases());
    for c in &cases {
        let net = Net::load(c.net);
        let s = net.settings(c);
        let all: Vec<_> = net.names.values().cloned().collect();
        let mut own_cache = VerifyCache::new();
        let own = SharedGraph::build(&net.ring, &p, s.reference_time, &s.limits, &mut own_cache);
        let report = evaluate_lazy(Arc::new(net.ring.clone()), &s, &p, &VerifyCache::new());
        let shared = SharedGraph::from_report(&report).expect("a lazy report");
        assert_eq!(
            shared.standings_and_count(&s, &all),
            own.standings_and_count(&s, &all),
            "{}",
            c.net
        );
        // A web with other roots (every named key) on the same graph.
        let mut wide = s.clone();
        wide.roots = all.iter().cloned().collect();
        assert_eq!(
            shared.standings(&wide, &all),
            own.standings(&wide, &all),
            "{}: other roots",
            c.net
        );
        assert!(
            SharedGraph::from_report(&evaluate_cached(&net.ring, &s, &p, &mut own_cache)).is_none(),
            "an eager report has no graph to share"
        );
    }
}

#[test]
fn a_revocation_added_after_caching_counts() {
    let (root, a, b) = (
        Key::new("root.example"),
        Key::new("a.example"),
        Key::new("b.example"),
    );
    let ring = Keyring::from_certs([root.public(), certify(&root, &a), certify(&a, &b)]);
    let s = TrustSettings::new([root.fpr()], at(T0));
    let p = StandardPolicy::new();
    let mut cache = VerifyCache::new();
    let before = evaluate_cached(&ring, &s, &p, &mut cache);
    assert_eq!(
        before.key(&b.fpr()).unwrap().status,
        KeyStatus::Trusted { depth: 2 }
    );
    // a revokes itself; the cache holds a's and b's certifications.
    let mut signer = a.signer();
    let rev = CertRevocationBuilder::new()
        .set_signature_creation_time(at(T0 - 10 * DAY))
        .unwrap()
        .set_reason_for_revocation(ReasonForRevocation::KeyCompromised, b"test")
        .unwrap()
        .build(&mut signer, &a.tsk, None)
        .unwrap();
    let revoked_a = certify(&root, &a).insert_packets(rev).unwrap().0;
    let ring2 = Keyring::from_certs([root.public(), revoked_a, certify(&a, &b)]);
    let warm = evaluate_cached(&ring2, &s, &p, &mut cache);
    let cold = evaluate_cached(&ring2, &s, &p, &mut VerifyCache::new());
    assert_eq!(keys(&warm), keys(&cold));
    assert!(matches!(
        warm.key(&a.fpr()).unwrap().status,
        KeyStatus::Untrusted { .. }
    ));
    assert!(
        !warm.key(&b.fpr()).unwrap().status.is_trusted(),
        "b was trusted only through the revoked a"
    );
    assert_eq!(warm.stats.verified, 0, "nothing new to verify");
}
