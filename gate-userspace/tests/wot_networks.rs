//! The web-of-trust engine on the generated fixture networks: verdicts,
//! paths, exceptions, trust signatures, flooding limits, keyring loading.

mod wot_common;

use std::path::PathBuf;
use std::time::Duration;

use openpgp::policy::StandardPolicy;
use openpgp::serialize::{Marshal, MarshalInto};
use sequoia_openpgp as openpgp;
use wot_common::*;
use wotgate::wot::{
    evaluate, evaluate_cached, EdgeKind, KeyStatus, Keyring, Limits, LoadProblem, VerifyCache,
};

#[test]
fn certification_mode_networks() {
    let mut bad = Vec::new();
    let cases = certification_cases();
    for c in &cases {
        let net = Net::load(c.net);
        bad.extend(check(&net, c, &net.eval(c)));
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn trust_signature_networks() {
    let mut bad = Vec::new();
    for c in &tsig_cases() {
        let net = Net::load(c.net);
        bad.extend(check(&net, c, &net.eval(c)));
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn find<'a>(cases: &'a [Case], net: &str, depth: usize) -> &'a Case {
    cases
        .iter()
        .find(|c| c.net == net && c.depth == depth)
        .expect("case")
}

#[test]
fn paths_name_every_certification() {
    let cases = certification_cases();
    let c = find(&cases, "level-one", 2);
    let net = Net::load(c.net);
    let r = net.eval(c);
    let bob = r.key(&net.fpr("Bob")).unwrap();
    let u = &bob.userids[0];
    assert!(u.authenticated);
    assert_eq!(u.email.as_deref(), Some("bob@level-one.example"));
    assert_eq!(u.domain.as_deref(), Some("level-one.example"));
    let steps: Vec<_> = u
        .path
        .iter()
        .map(|s| (net.name_of(&s.issuer), net.name_of(&s.target)))
        .collect();
    assert_eq!(
        steps,
        [
            ("Root".to_string(), "Alice".to_string()),
            ("Alice".into(), "Bob".into())
        ]
    );
    assert!(u.path.iter().all(|s| s.kind == EdgeKind::Certification));
    // The root's own User ID is authenticated at depth 0 with an empty path.
    let root = r.key(&net.fpr("Root")).unwrap();
    assert_eq!(root.userids[0].depth, Some(0));
    assert!(root.userids[0].authenticated && root.userids[0].path.is_empty());
}

#[test]
fn retraction_and_renewal_use_the_newest_certification() {
    let cases = certification_cases();
    let c = find(&cases, "retraction", 2);
    let net = Net::load(c.net);
    let r = net.eval(c);
    let b = r.key(&net.fpr("B")).unwrap();
    // Day 20 is the renewal (T0 + 20 days).
    let day20 = std::time::UNIX_EPOCH + Duration::from_secs(1_704_067_200 + 20 * 86_400);
    assert_eq!(b.userids[0].path[0].created, day20);
}

#[test]
fn revoked_user_id_is_not_authenticated() {
    let cases = certification_cases();
    let c = find(&cases, "revoked-key", 2);
    let net = Net::load(c.net);
    let r = net.eval(c);
    let k = r.key(&net.fpr("C")).unwrap();
    let old = k
        .userids
        .iter()
        .find(|u| u.userid.contains("c-old"))
        .unwrap();
    let cur = k
        .userids
        .iter()
        .find(|u| u.userid.starts_with("C <"))
        .unwrap();
    assert!(!old.authenticated && old.binding_problem.is_some());
    assert!(cur.authenticated && cur.binding_problem.is_none());
}

#[test]
fn refused_key_exposes_would_be_bindings() {
    let cases = certification_cases();
    let c = cases.iter().find(|c| c.net == "refuse").unwrap();
    let net = Net::load(c.net);
    let r = net.eval(c);
    let m = r.key(&net.fpr("M")).unwrap();
    assert_eq!(m.status, KeyStatus::Refused);
    assert!(m.introducer, "a refused key's certifications still count");
    assert!(m
        .userids
        .iter()
        .all(|u| !u.authenticated && u.authenticated_if_not_refused));
    // The same network without exceptions trusts M.
    let mut plain = net.settings(c);
    plain.refuse.clear();
    let r2 = evaluate(&net.ring, &plain, &StandardPolicy::new());
    assert_eq!(
        r2.key(&net.fpr("M")).unwrap().status,
        KeyStatus::Trusted { depth: 1 }
    );
}

#[test]
fn trust_signature_paths_carry_their_kind() {
    let cases = tsig_cases();
    let c = &cases[0];
    let net = Net::load(c.net);
    let r = net.eval(c);
    let alice = r.key(&net.fpr("Alice")).unwrap();
    let p = &alice.userids[0].path;
    assert_eq!(p.len(), 2);
    assert_eq!(
        p[0].kind,
        EdgeKind::TrustSignature {
            level: 2,
            amount: 120
        }
    );
    assert_eq!(p[1].kind, EdgeKind::Certification);
    // The newer plain certification replaced CA4's trust signature.
    let ca4 = r.key(&net.fpr("CA4")).unwrap();
    assert_eq!(ca4.userids[0].path[0].kind, EdgeKind::Certification);
    assert!(!ca4.introducer);
}

#[test]
fn recompute_with_warm_cache_verifies_nothing() {
    let cases = certification_cases();
    let c = find(&cases, "flooded", 2);
    let net = Net::load(c.net);
    let s = net.settings(c);
    let mut cache = VerifyCache::new();
    let p = StandardPolicy::new();
    let first = evaluate_cached(&net.ring, &s, &p, &mut cache);
    let second = evaluate_cached(&net.ring, &s, &p, &mut cache);
    assert!(first.stats.verified > 0);
    assert_eq!(second.stats.verified, 0);
    assert_eq!(second.stats.cache_hits, first.stats.verified);
    let a: Vec<_> = first.keys().cloned().collect();
    let b: Vec<_> = second.keys().cloned().collect();
    assert_eq!(a, b);
}

#[test]
fn flooding_limits_cut_and_report() {
    let cases = certification_cases();
    let c = find(&cases, "flooded", 2);
    let net = Net::load(c.net);
    let p = StandardPolicy::new();
    let mut s = net.settings(c);
    let r = evaluate(&net.ring, &s, &p);
    assert_eq!(r.stats.unknown_issuer, 2000);
    assert_eq!(r.stats.cut_by_limits, 0);
    // B carries 13 certifications by known keys; keep the newest 10.
    s.limits = Limits {
        max_certifications_per_cert: 10,
        ..Limits::default()
    };
    let r = evaluate(&net.ring, &s, &p);
    let b = r.key(&net.fpr("B")).unwrap();
    assert_eq!(b.certifications_cut, 3);
    assert_eq!(
        b.status,
        KeyStatus::Trusted { depth: 2 },
        "still trusted through K3..K12"
    );
    // At depth 1 only Root's (the oldest, cut) certification could count.
    s.depth = 1;
    let r = evaluate(&net.ring, &s, &p);
    let got = &r.key(&net.fpr("B")).unwrap().status;
    assert_eq!(
        got,
        &KeyStatus::Untrusted {
            reason: wotgate::wot::UntrustedReason::Certification {
                issuer: net.fpr("Root"),
                reason: wotgate::wot::RejectReason::CutByLimits
            }
        }
    );
    // A byte cap works the same way.
    s.depth = 2;
    s.limits = Limits {
        max_certification_bytes_per_cert: 1,
        ..Limits::default()
    };
    let r = evaluate(&net.ring, &s, &p);
    assert_eq!(r.key(&net.fpr("B")).unwrap().certifications_cut, 13);
}

/// Flooding by issuers not in the keyring costs no verification: the same
/// evaluation with 12,000 (real) extra certifications by unknown keys
/// verifies exactly as much as with none. (`bench_wot` times 100,000.)
#[test]
fn unknown_issuer_flood_is_not_verified() {
    let cases = certification_cases();
    let c = find(&cases, "flooded", 2);
    let net = Net::load(c.net);
    let p = StandardPolicy::new();
    let s = net.settings(c);
    let known = |h: &openpgp::KeyHandle| !net.ring.lookup(h).is_empty();
    // The fixture without its 2,000-certification flood.
    // A as the fixture file has it (the keyring keeps no certification by
    // an issuer it does not hold, so not from there).
    let a = <openpgp::cert::CertParser as openpgp::parse::Parse<_>>::from_file(&net.keyring_path)
        .unwrap()
        .map(|c| c.unwrap())
        .find(|c| c.fingerprint() == net.fpr("A"))
        .unwrap();
    let stripped = openpgp::Cert::from_packets(a.clone().into_packets().filter(|pk| match pk {
        openpgp::Packet::Signature(sig) => sig.get_issuers().iter().any(known),
        _ => true,
    }))
    .unwrap();
    let with = |cert: openpgp::Cert| {
        let others = net
            .ring
            .full_certs()
            .filter(|c| c.fingerprint() != cert.fingerprint());
        Keyring::from_certs(others.collect::<Vec<_>>().into_iter().chain([cert]))
    };
    let none = evaluate(&with(stripped), &s, &p);
    assert_eq!(none.stats.unknown_issuer, 0);
    // 10,000 more, freshly signed by a key that is not in the keyring.
    let (flooder, _) = openpgp::cert::CertBuilder::general_purpose(Some("flooder"))
        .generate()
        .unwrap();
    let mut signer = flooder
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let uid = a.userids().next().unwrap().userid().clone();
    let base = std::time::UNIX_EPOCH + Duration::from_secs(1_704_067_200 + 86_400);
    let flood: Vec<_> = (0..10_000u64)
        .map(|i| {
            openpgp::packet::signature::SignatureBuilder::new(
                openpgp::types::SignatureType::GenericCertification,
            )
            .set_signature_creation_time(base + Duration::from_secs(i))
            .unwrap()
            .sign_userid_binding(&mut signer, a.primary_key().key(), &uid)
            .unwrap()
        })
        .collect();
    let flooded = a.insert_packets(flood).unwrap().0;
    let r = evaluate(&with(flooded), &s, &p);
    assert_eq!(r.stats.unknown_issuer, 12_000);
    assert_eq!(
        r.stats.verified, none.stats.verified,
        "no extra verification"
    );
    assert_eq!(
        r.stats.cut_by_limits, 0,
        "unknown issuers do not push out known ones"
    );
    assert_eq!(
        r.key(&net.fpr("A")).unwrap().status,
        KeyStatus::Trusted { depth: 1 }
    );
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wot-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn keyring_merges_armoured_copies_and_keeps_what_parsed() {
    let net = Net::load("two-roots");
    let dir = tmpdir("keyring");
    // Armoured copy of every certificate, one file.
    let mut armoured = Vec::new();
    {
        let mut w =
            openpgp::armor::Writer::new(&mut armoured, openpgp::armor::Kind::PublicKey).unwrap();
        for c in net.ring.full_certs() {
            c.serialize(&mut w).unwrap();
        }
        w.finalize().unwrap();
    }
    std::fs::write(dir.join("all.asc"), &armoured).unwrap();
    // A second, binary copy of Root1 (merged with the armoured one).
    let root1 = net.ring.full_cert(&net.fpr("Root1")).unwrap();
    std::fs::write(dir.join("root1.pgp"), root1.to_vec().unwrap()).unwrap();
    // A truncated copy of the binary keyring.
    let bytes = std::fs::read(&net.keyring_path).unwrap();
    let cut = dir.join("truncated.pgp");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // Not read from a directory: wrong extension.
    std::fs::write(dir.join("notes.txt"), b"not a keyring").unwrap();

    let (ring, problems) = Keyring::load(std::slice::from_ref(&dir));
    assert_eq!(
        ring.len(),
        net.ring.len(),
        "copies merged into one per fingerprint"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    match &problems[0] {
        LoadProblem::Parse {
            origin, certs_kept, ..
        } => {
            assert_eq!(origin, &cut.display().to_string());
            assert!(*certs_kept > 0 && *certs_kept < net.ring.len());
            assert!(problems[0].to_string().contains("truncated.pgp"));
        }
        p => panic!("unexpected {p:?}"),
    }
    // The truncated file alone keeps what parsed.
    let (alone, problems) = Keyring::load(&[cut]);
    assert_eq!(problems.len(), 1);
    assert!(!alone.is_empty() && alone.len() < net.ring.len());
    // A missing path is reported by name.
    let (_, problems) = Keyring::load(&[dir.join("missing.pgp")]);
    assert!(matches!(&problems[..], [LoadProblem::Read(e)] if e.origin().ends_with("missing.pgp")));
    // Lookups.
    let a = ring.cert(&net.fpr("A")).unwrap();
    assert_eq!(ring.lookup(&a.keyid().into()).len(), 1);
    let sub = a.keys().subkeys().next().unwrap().key().keyid();
    assert_eq!(ring.lookup(&sub.into())[0].fingerprint(), a.fingerprint());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A load from files scans them first and drops, as it parses, the
/// certifications by issuers in no file; the same bytes parsed without
/// the scan keep them until the end. Both give the same verdicts,
/// explanations and counts on every fixture network, also with a copy of
/// the file beside it (no scan: the copies are merged).
#[test]
fn loading_with_the_scan_changes_no_verdict() {
    let p = StandardPolicy::new();
    let cases = certification_cases().into_iter().chain(tsig_cases());
    let mut seen = std::collections::BTreeSet::new();
    for c in cases {
        if !seen.insert(c.net) {
            continue;
        }
        let net = Net::load(c.net);
        let s = net.settings(&c);
        let bytes = std::fs::read(&net.keyring_path).unwrap();
        let named = |n: usize| {
            (0..n)
                .map(|i| wotgate::source::Named {
                    origin: format!("{}#{i}", net.keyring_path.display()),
                    bytes: bytes.clone(),
                })
                .collect::<Vec<_>>()
        };
        let dir = tmpdir(&format!("scan-{}", c.net));
        let copy = dir.join("copy.pgp");
        std::fs::write(&copy, &bytes).unwrap();
        let twice = [net.keyring_path.clone(), copy];
        let (loaded_twice, problems) = Keyring::load(&twice);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(problems.is_empty(), "{}: {problems:?}", c.net);
        for (what, scanned, plain) in [
            (
                "once",
                Keyring::load(std::slice::from_ref(&net.keyring_path)).0,
                Keyring::parse(&named(1)).0,
            ),
            ("twice", loaded_twice, Keyring::parse(&named(2)).0),
        ] {
            let a = evaluate(&scanned, &s, &p);
            let b = evaluate(&plain, &s, &p);
            assert_eq!(a.stats, b.stats, "{} {what}", c.net);
            let ka: Vec<_> = a.keys().cloned().collect();
            let kb: Vec<_> = b.keys().cloned().collect();
            assert_eq!(ka, kb, "{} {what}", c.net);
        }
    }
}

/// What the crawl reads of a lazy report (the trusted and the refused
/// keys, nothing else explained) is what the eager report gives filtered
/// by status, on every fixture case.
#[test]
fn trusted_or_refused_is_the_eager_filter() {
    let p = StandardPolicy::new();
    let mut checked = 0;
    for c in certification_cases().into_iter().chain(tsig_cases()) {
        let net = Net::load(c.net);
        let s = net.settings(&c);
        let eager = evaluate(&net.ring, &s, &p);
        let want: Vec<_> = eager
            .keys()
            .filter(|k| k.status.is_trusted() || k.status == KeyStatus::Refused)
            .cloned()
            .collect();
        let lazy = wotgate::wot::evaluate_lazy(
            std::sync::Arc::new(net.ring.clone()),
            &s,
            &p,
            &VerifyCache::new(),
        );
        let got: Vec<_> = lazy.trusted_or_refused(&s.refuse).cloned().collect();
        assert_eq!(got, want, "{} depth {}", c.net, c.depth);
        checked += usize::from(want.iter().any(|k| k.status == KeyStatus::Refused));
    }
    assert!(checked > 0, "some case refuses a key");
}
