//! The trust engine kept across refreshes gives exactly the verdicts of a
//! computation from scratch, through random sequences of changes (added and
//! removed certifications, revocations, keys, copies, settings (flooding
//! limits too), and the reference time moving across creations and expirations), and parses
//! only what changed.

mod statement_fixtures;
mod wot_common;

use std::sync::Arc;

use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::Signature;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::{ReasonForRevocation, SignatureType};
use sequoia_openpgp as openpgp;
use statement_fixtures::{at, Key, DAY, T0};
use wot_common::*;
use wotgate::source::Named;
use wotgate::wot::{
    evaluate_lazy, IntroducerMode, KeyTrust, Keyring, TrustEngine, TrustReport, TrustSettings,
    VerifyCache,
};

fn keys(r: &TrustReport) -> Vec<KeyTrust> {
    r.keys().cloned().collect()
}

fn engine() -> TrustEngine {
    TrustEngine::new(Arc::new(StandardPolicy::new()), VerifyCache::new())
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// The network the changes apply to: keys, which are in the keyring, the
/// signatures added to each, and how the keyring is laid out in sources.
struct Model {
    keys: Vec<Key>,
    present: Vec<bool>,
    /// (target, signature): certifications, their revocations, key revocations.
    sigs: Vec<(usize, Signature)>,
    /// A key given twice (a second copy in the last source).
    dup: Option<usize>,
    /// 0: one binary source; 1: two; 2: the second armoured.
    layout: usize,
    clock: u64,
}

impl Model {
    fn new(n: usize) -> Model {
        let keys = (0..n)
            .map(|i| Key::new(&format!("<k{i}@k{i}.example>")))
            .collect();
        Model {
            keys,
            present: vec![true; n],
            sigs: Vec::new(),
            dup: None,
            layout: 0,
            clock: T0 - 300 * DAY,
        }
    }

    fn signer(&self, i: usize) -> openpgp::crypto::KeyPair {
        self.keys[i].signer()
    }

    /// The next signature time (a minute later each time).
    fn tick(&mut self) -> std::time::SystemTime {
        self.clock += 60;
        at(self.clock)
    }

    fn certify(&mut self, x: usize, y: usize, typ: SignatureType, tsig: Option<u8>) {
        self.certify_for(x, y, typ, tsig, None)
    }

    /// [`Model::certify`], expiring `valid` seconds after it is made.
    fn certify_for(
        &mut self,
        x: usize,
        y: usize,
        typ: SignatureType,
        tsig: Option<u8>,
        valid: Option<u64>,
    ) {
        let mut b = SignatureBuilder::new(typ)
            .set_signature_creation_time(self.tick())
            .unwrap();
        if let Some(level) = tsig {
            b = b.set_trust_signature(level, 120).unwrap();
        }
        if let Some(v) = valid {
            b = b
                .set_signature_validity_period(std::time::Duration::from_secs(v))
                .unwrap();
        }
        let target = &self.keys[y].tsk;
        let uid = target.userids().next().unwrap().userid().clone();
        let sig = b
            .sign_userid_binding(&mut self.signer(x), target.primary_key().key(), &uid)
            .unwrap();
        self.sigs.push((y, sig));
    }

    fn revoke_key(&mut self, y: usize) {
        let t = self.tick();
        let sig = CertRevocationBuilder::new()
            .set_signature_creation_time(t)
            .unwrap()
            .set_reason_for_revocation(ReasonForRevocation::KeyCompromised, b"lost")
            .unwrap()
            .build(&mut self.signer(y), &self.keys[y].tsk, None)
            .unwrap();
        self.sigs.push((y, sig));
    }

    fn cert(&self, y: usize) -> Cert {
        let sigs: Vec<openpgp::Packet> = self
            .sigs
            .iter()
            .filter(|(t, _)| *t == y)
            .map(|(_, s)| s.clone().into())
            .collect();
        self.keys[y].public().insert_packets(sigs).unwrap().0
    }

    fn sources(&self) -> Vec<Named> {
        let certs: Vec<Cert> = (0..self.keys.len())
            .filter(|&i| self.present[i])
            .map(|i| self.cert(i))
            .collect();
        let mid = if self.layout == 0 {
            certs.len()
        } else {
            certs.len() / 2
        };
        let mut first = Vec::new();
        for c in &certs[..mid] {
            c.serialize(&mut first).unwrap();
        }
        let mut second = Vec::new();
        let mut rest: Vec<Cert> = certs[mid..].to_vec();
        if let Some(d) = self.dup {
            // An older copy: without the signatures added since.
            rest.push(self.keys[d].public());
        }
        for c in &rest {
            if self.layout == 2 {
                second.extend(c.armored().to_vec().unwrap());
            } else {
                c.serialize(&mut second).unwrap();
            }
        }
        vec![
            Named {
                origin: "first.pgp".into(),
                bytes: first,
            },
            Named {
                origin: "second.pgp".into(),
                bytes: second,
            },
        ]
    }
}

/// The engine's verdicts equal a fresh computation's on `sources`.
fn assert_same(engine: &mut TrustEngine, sources: &[Named], s: &TrustSettings, what: &str) {
    let p = StandardPolicy::new();
    let (ring, problems) = Keyring::parse(sources);
    let fresh = evaluate_lazy(Arc::new(ring), s, &p, &VerifyCache::new());
    let ev = engine.evaluate(sources, s);
    let show =
        |v: &[wotgate::wot::LoadProblem]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    assert_eq!(show(&ev.problems), show(&problems), "{what}: problems");
    assert_eq!(
        ev.report.trusted_count(),
        fresh.trusted_count(),
        "{what}: trusted"
    );
    assert_eq!(
        ev.report.missing_roots, fresh.missing_roots,
        "{what}: roots"
    );
    assert_eq!(keys(&ev.report), keys(&fresh), "{what}: verdicts");
}

#[test]
fn random_changes_give_the_verdicts_of_a_fresh_computation() {
    const N: usize = 9;
    let mut trusted_seen = 0;
    let mut in_place = 0;
    for seed in [0x9e37_79b9_7f4a_7c15u64, 0x1234_5678_9abc_def1, 42] {
        let mut rng = Rng(seed);
        let mut m = Model::new(N);
        let mut e = engine();
        let mut s = TrustSettings::new([m.keys[0].fpr()], at(T0));
        for step in 0..60 {
            // The root certifies often, so that paths grow past it.
            let x = if rng.below(3) == 0 { 0 } else { rng.below(N) };
            let y = rng.below(N);
            let op = rng.below(16);
            match op {
                0..=3 if x != y => m.certify(x, y, SignatureType::GenericCertification, None),
                4 if x != y => m.certify(
                    x,
                    y,
                    SignatureType::GenericCertification,
                    Some(1 + (y % 2) as u8),
                ),
                5 if x != y => m.certify(x, y, SignatureType::CertificationRevocation, None),
                6 if !m.sigs.is_empty() => {
                    let i = rng.below(m.sigs.len());
                    m.sigs.remove(i);
                }
                7 if step % 4 == 0 => m.revoke_key(y),
                8 if y != 0 || step % 5 == 0 => m.present[y] = !m.present[y],
                9 => m.dup = if m.dup.is_some() { None } else { Some(y) },
                10 => m.layout = rng.below(3),
                11 => {
                    // Settings: depth, mode, time, roots, flooding limits.
                    match rng.below(5) {
                        0 => s.depth = 1 + rng.below(4),
                        1 => {
                            s.mode = if s.mode == IntroducerMode::Certifications {
                                IntroducerMode::TrustSignatures
                            } else {
                                IntroducerMode::Certifications
                            }
                        }
                        2 => s.reference_time = at(T0 - rng.below(400) as u64 * DAY),
                        3 => {
                            s.limits.max_certifications_per_cert = match rng.below(3) {
                                0 => 1,
                                1 => 3,
                                _ => wotgate::wot::Limits::default().max_certifications_per_cert,
                            }
                        }
                        _ => {
                            s.roots.insert(m.keys[y].fpr());
                        }
                    }
                }
                13 if x != y => {
                    let valid = 60 * (1 + rng.below(20) as u64);
                    m.certify_for(x, y, SignatureType::GenericCertification, None, Some(valid))
                }
                // The time near the last signatures (either side), or on.
                14 => s.reference_time = at(m.clock + rng.below(7800) as u64 - 600),
                15 => s.reference_time += std::time::Duration::from_secs(rng.below(900) as u64),
                _ => {}
            }
            let what = format!("seed {seed:x} step {step} op {op}");
            assert_same(&mut e, &m.sources(), &s, &what);
            in_place += usize::from(e.last_run().in_place);
            let ev = e.evaluate(&m.sources(), &s);
            trusted_seen = trusted_seen.max(ev.report.trusted_count());
        }
    }
    assert!(trusted_seen > 3, "the changes reached past the roots");
    assert!(in_place > 20, "keyrings patched in place: {in_place}");
}

#[test]
fn one_added_certification_parses_one_certificate() {
    let mut m = Model::new(6);
    for i in 0..5 {
        m.certify(i, i + 1, SignatureType::GenericCertification, None);
    }
    let s = {
        let mut s = TrustSettings::new([m.keys[0].fpr()], at(T0));
        s.depth = 5;
        s
    };
    let mut e = engine();
    assert_same(&mut e, &m.sources(), &s, "cold");
    assert_eq!(e.last_run().parsed, 6);
    assert_same(&mut e, &m.sources(), &s, "unchanged");
    let run = e.last_run();
    assert_eq!((run.parsed, run.reused, run.judged_before), (0, 6, 6));
    assert_eq!(run.verified, 0);
    // Held: the next computation must copy its keyring, not patch it.
    let held = e.evaluate(&m.sources(), &s);
    let held_trusted = held.report.trusted_count();
    m.certify(0, 5, SignatureType::GenericCertification, None);
    assert_same(&mut e, &m.sources(), &s, "one added, the last keyring held");
    assert!(e.last_run().in_place, "patched (a copy)");
    assert_eq!(held.report.trusted_count(), held_trusted);
    let on_5 = |r: &Keyring| {
        let c = r.full_cert(&m.keys[5].fpr()).unwrap();
        let n = c.userids().next().unwrap().certifications().count();
        n
    };
    assert_eq!(on_5(&held.keyring), 1, "the held keyring is as it was");
    drop(held);
    m.certify(1, 5, SignatureType::GenericCertification, None);
    assert_same(&mut e, &m.sources(), &s, "one added");
    let run = e.last_run();
    assert!(run.in_place);
    assert_eq!((run.parsed, run.judged_before), (1, 5));
    assert_eq!(
        run.verified, 1,
        "one verification for one new certification"
    );
    // A later time with no signature made or expiring in between: every
    // judgement is kept.
    let mut later = s.clone();
    later.reference_time = at(T0 + DAY);
    assert_same(&mut e, &m.sources(), &later, "later");
    assert_eq!((e.last_run().parsed, e.last_run().judged_before), (0, 6));
    // Back before the last certification was made: the keys certified
    // (within minutes of it, so within the clock-skew tolerance of the
    // time) are judged again; the root, certified by nobody, is kept.
    let mut earlier = s.clone();
    earlier.reference_time = at(m.clock - 30);
    assert_same(&mut e, &m.sources(), &earlier, "earlier");
    assert_eq!((e.last_run().parsed, e.last_run().judged_before), (0, 1));
}

#[test]
fn every_fixture_through_the_engine() {
    let mut cases = certification_cases();
    cases.extend(tsig_cases());
    for c in &cases {
        let net = Net::load(c.net);
        let sources = vec![Named {
            origin: net.keyring_path.display().to_string(),
            bytes: std::fs::read(&net.keyring_path).unwrap(),
        }];
        let s = net.settings(c);
        let mut e = engine();
        for round in ["cold", "warm"] {
            let ev = e.evaluate(&sources, &s);
            assert!(ev.problems.is_empty(), "{}: {:?}", c.net, ev.problems);
            let wrong = check(&net, c, &ev.report);
            assert!(wrong.is_empty(), "{} {round}: {wrong:?}", c.net);
        }
        assert_eq!(e.last_run().parsed, 0, "{}: warm parses nothing", c.net);
    }
}

#[test]
fn kept_judgements_end_at_expirations() {
    let mut m = Model::new(3);
    m.certify(0, 1, SignatureType::GenericCertification, None);
    m.certify_for(
        1,
        2,
        SignatureType::GenericCertification,
        None,
        Some(2 * 3600),
    );
    let mut s = TrustSettings::new([m.keys[0].fpr()], at(m.clock + 3600));
    s.depth = 2;
    let mut e = engine();
    assert_same(&mut e, &m.sources(), &s, "alive");
    assert_eq!(e.evaluate(&m.sources(), &s).report.trusted_count(), 3);
    // Later, before the expiration: every judgement kept.
    s.reference_time += std::time::Duration::from_secs(1200);
    assert_same(&mut e, &m.sources(), &s, "alive, later");
    assert_eq!(e.last_run().judged_before, 3);
    // Past it: key 2 is judged again and no longer trusted.
    s.reference_time = at(m.clock + 3 * 3600);
    assert_same(&mut e, &m.sources(), &s, "expired");
    assert_eq!(e.last_run().judged_before, 2);
    assert_eq!(e.evaluate(&m.sources(), &s).report.trusted_count(), 2);
    // And back.
    s.reference_time = at(m.clock + 3600);
    assert_same(&mut e, &m.sources(), &s, "back");
    assert_eq!(e.evaluate(&m.sources(), &s).report.trusted_count(), 3);
}

/// A kept judgement also ends where a key expires: key 2 (its validity
/// period ends four hours after the model's clock starts) is judged again
/// past that time, and is no longer trusted.
#[test]
fn kept_judgements_end_at_key_expiry() {
    let mut m = Model::new(3);
    let created = T0 - 365 * DAY;
    let expires = m.clock + 4 * 3600;
    let (tsk, _) = CertBuilder::new()
        .set_creation_time(at(created))
        .set_validity_period(std::time::Duration::from_secs(expires - created))
        .add_signing_subkey()
        .add_userid("<k2@k2.example>")
        .generate()
        .unwrap();
    m.keys[2] = Key { tsk };
    m.certify(0, 1, SignatureType::GenericCertification, None);
    m.certify(1, 2, SignatureType::GenericCertification, None);
    // An hour after the certifications (past the 30 minutes of clock skew
    // sequoia allows either side of their creation).
    let mut s = TrustSettings::new([m.keys[0].fpr()], at(m.clock + 3600));
    s.depth = 2;
    let mut e = engine();
    assert_same(&mut e, &m.sources(), &s, "alive");
    assert_eq!(e.evaluate(&m.sources(), &s).report.trusted_count(), 3);
    // Two hours before the expiry: every judgement kept.
    s.reference_time = at(expires - 2 * 3600);
    assert_same(&mut e, &m.sources(), &s, "alive, later");
    assert_eq!(e.last_run().judged_before, 3);
    s.reference_time = at(expires + 3600);
    assert_same(&mut e, &m.sources(), &s, "expired");
    assert_eq!(e.last_run().judged_before, 2, "key 2 judged again");
    assert_eq!(e.evaluate(&m.sources(), &s).report.trusted_count(), 2);
}

/// A certificate that gains a subkey keeps its place and primary key, so
/// the keyring is patched in place; the new subkey is then found (the
/// indexes of every key are made again).
#[test]
fn a_subkey_added_in_place_is_found() {
    let mut m = Model::new(4);
    m.certify(0, 3, SignatureType::GenericCertification, None);
    let s = TrustSettings::new([m.keys[0].fpr()], at(T0));
    let mut e = engine();
    assert_same(&mut e, &m.sources(), &s, "before");
    let p = StandardPolicy::new();
    let vc = m.keys[3].tsk.with_policy(&p, at(T0)).unwrap();
    let tsk = openpgp::cert::KeyBuilder::new(openpgp::types::KeyFlags::signing())
        .set_creation_time(at(T0 - 100 * DAY))
        .subkey(vc)
        .unwrap()
        .attach_cert()
        .unwrap();
    let sub = tsk
        .keys()
        .subkeys()
        .map(|k| k.key().fingerprint())
        .find(|f| {
            !m.keys[3]
                .tsk
                .keys()
                .subkeys()
                .any(|k| k.key().fingerprint() == *f)
        });
    let sub = sub.expect("a new subkey");
    m.keys[3] = Key { tsk };
    assert_same(&mut e, &m.sources(), &s, "a subkey added");
    assert!(e.last_run().in_place);
    let ev = e.evaluate(&m.sources(), &s);
    let found = ev.keyring.lookup(&openpgp::KeyHandle::from(sub));
    assert_eq!(found.len(), 1, "the new subkey names its certificate");
    assert_eq!(found[0].fingerprint(), m.keys[3].fpr());
}
