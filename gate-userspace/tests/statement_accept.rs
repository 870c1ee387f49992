//! Acceptance rules against real keys and signatures: every rule has a
//! statement that breaks it, and each rejection names file, domain and rule.

mod statement_fixtures;

use std::io::{Read, Write};

use sequoia_openpgp::armor;
use statement_fixtures::*;
use wotgate::model::prefixes::Verdict;
use wotgate::statement::{Judgement, Rule, SerialState};

fn rule_of(j: &Judgement) -> Rule {
    match &j.result {
        Ok(a) => panic!("{} was accepted as {:?}", j.file, a.role),
        Err(r) => r.rule,
    }
}

fn rejected(j: &Judgement, rule: Rule, needle: &str) {
    assert_eq!(rule_of(j), rule, "{:?}", j.result);
    let text = j.result.as_ref().unwrap_err().to_string();
    assert!(text.starts_with(&format!("{}: ", j.file)), "{text}");
    assert!(text.contains(&format!("rejected by rule {rule}")), "{text}");
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
}

#[test]
fn valid_statement_is_accepted_and_explained() {
    let w = World::new();
    let st = statement("alpha.example", 7, &["2001:db8:a::/48", "2001:db8:b::/48"]);
    let j = w.judge("alpha.asc", &w.alpha.sign(&st));
    let a = j.result.as_ref().expect("accepted");
    assert_eq!(
        (a.role, a.depth, &a.statement),
        (Verdict::Allow, Some(0), &st)
    );
    assert_eq!(a.signer, w.alpha.fpr().to_hex());
    assert_eq!(a.signed_at, T0 - 3600);
    let why = j.explanation.join("\n");
    for needle in [
        "verifies under the standard policy",
        "trusted at depth 0",
        "validity window",
        "2 prefixes",
    ] {
        assert!(why.contains(needle), "{why}");
    }
}

fn reframe(armoured: &[u8], edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut raw = Vec::new();
    armor::Reader::from_bytes(
        armoured,
        armor::ReaderMode::Tolerant(Some(armor::Kind::Message)),
    )
    .read_to_end(&mut raw)
    .unwrap();
    edit(&mut raw);
    let mut out = Vec::new();
    let mut w = armor::Writer::new(&mut out, armor::Kind::Message).unwrap();
    w.write_all(&raw).unwrap();
    w.finalize().unwrap();
    out
}

#[test]
fn forged_signature_is_rejected() {
    let w = World::new();
    let signed = w
        .alpha
        .sign(&statement("alpha.example", 7, &["2001:db8:a::/48"]));
    let forged = reframe(&signed, |raw| {
        let i = raw
            .windows(9)
            .position(|x| x == b"serial: 7")
            .expect("body in literal");
        raw[i + 8] = b'8';
    });
    rejected(
        &w.judge("forged.asc", &forged),
        Rule::BadSignature,
        "bad signature",
    );
}

#[test]
fn trusted_signer_for_another_domain_is_rejected() {
    let w = World::new();
    let j = w.judge(
        "b.asc",
        &w.beta
            .sign(&statement("alpha.example", 7, &["2001:db8:a::/48"])),
    );
    rejected(
        &j,
        Rule::DomainNotAuthenticated,
        "it speaks for: beta.example",
    );
    assert_eq!(
        j.result.unwrap_err().domain.as_deref(),
        Some("alpha.example")
    );
}

#[test]
fn untrusted_and_unknown_signers_are_rejected() {
    let w = World::new();
    let st = statement("eve.example", 1, &["2001:db8:e::/48"]);
    rejected(
        &w.judge("eve.asc", &w.eve.sign(&st)),
        Rule::UntrustedSigner,
        "not trusted",
    );
    let st = statement("stranger.example", 1, &["2001:db8:5::/48"]);
    rejected(
        &w.judge("s.asc", &w.stranger.sign(&st)),
        Rule::UnknownSigner,
        "unknown key",
    );
}

/// `key`'s public certificate with every subkey binding signature removed
/// (the subkeys stay, unbound).
fn without_subkey_bindings(key: &Key) -> sequoia_openpgp::Cert {
    use sequoia_openpgp::{Cert, Packet};
    let mut in_subkey = false;
    let packets = key.public().into_packets().filter(|p| {
        match p {
            Packet::PublicSubkey(_) => in_subkey = true,
            Packet::Signature(_) if in_subkey => return false,
            _ => in_subkey = false,
        }
        true
    });
    Cert::from_packets(packets).unwrap()
}

/// `key`'s public certificate with its signing subkey revoked as
/// compromised two days before T0 (before it signed).
fn with_revoked_subkey(key: &Key) -> sequoia_openpgp::Cert {
    use sequoia_openpgp::cert::SubkeyRevocationBuilder;
    use sequoia_openpgp::types::ReasonForRevocation;
    let sub = key.tsk.keys().subkeys().next().unwrap().key().clone();
    let mut primary = key.signer();
    let rev = SubkeyRevocationBuilder::new()
        .set_signature_creation_time(at(T0 - 2 * DAY))
        .unwrap()
        .set_reason_for_revocation(ReasonForRevocation::KeyCompromised, b"")
        .unwrap()
        .build(&mut primary, &key.tsk, &sub, None)
        .unwrap();
    key.public().insert_packets(rev).unwrap().0
}

/// A signing subkey the keyring holds but cannot use is named with its
/// certificate's fingerprint and User ID; a key no certificate holds is
/// said to be so, by Key ID.
#[test]
fn signing_key_problems_name_the_certificate() {
    let w = World::new();
    let signed = w
        .alpha
        .sign(&statement("alpha.example", 7, &["2001:db8:a::/48"]));
    let alpha = w.alpha.fpr().to_hex();
    let sub = w.alpha.tsk.keys().subkeys().next().unwrap().key().keyid();
    let sub = format!("0x{}", sub.to_hex());
    let owner = format!("{alpha} (Alpha Postmaster <postmaster@alpha.example>)");

    let revoked = judge_against(vec![with_revoked_subkey(&w.alpha)], "r.asc", &signed);
    rejected(
        &revoked,
        Rule::BadSignature,
        &format!("signing key {sub} of {owner} was not valid when it signed"),
    );
    rejected(&revoked, Rule::BadSignature, "signing key is revoked");

    let unbound = judge_against(vec![without_subkey_bindings(&w.alpha)], "u.asc", &signed);
    rejected(
        &unbound,
        Rule::BadSignature,
        &format!("signing key {sub} appears in certificate {owner} but is not validly bound to it"),
    );

    // An older copy of alpha's certificate, from before it had the subkey.
    let old_copy = w.alpha.public().retain_subkeys(|_| false);
    let unknown = judge_against(vec![old_copy], "o.asc", &signed);
    rejected(
        &unknown,
        Rule::UnknownSigner,
        &format!("no certificate in the keyrings has key {sub}"),
    );
}

#[test]
fn refused_signer_denies_only_its_own_domains() {
    let w = World::new();
    let own = w.judge(
        "m.asc",
        &w.mallory
            .sign(&statement("mallory.example", 3, &["2001:db8:a:66::/64"])),
    );
    let a = own.result.expect("a refused key's own statement verifies");
    assert_eq!((a.role, a.depth), (Verdict::Deny, None));
    let other = w.judge(
        "m2.asc",
        &w.mallory
            .sign(&statement("alpha.example", 3, &["2001:db8:a::/48"])),
    );
    rejected(
        &other,
        Rule::RefusedSigner,
        "may only deny prefixes for its own domains",
    );
}

#[test]
fn validity_window() {
    let w = World::new();
    let signed = w
        .alpha
        .sign(&statement("alpha.example", 7, &["2001:db8:a::/48"]));
    let rules = test_rules();
    let s = SerialState::default();
    rejected(
        &w.judge_with(&rules, &s, T0 + 31 * DAY, "a.asc", &signed),
        Rule::Expired,
        "expired at 2026-12-25T10:00:00Z",
    );
    // Before not-before but after the signature was made.
    let mut st = statement("alpha.example", 7, &["2001:db8:a::/48"]);
    st.not_before = T0 + DAY;
    let later = w.alpha.sign(&st);
    rejected(
        &w.judge("a.asc", &later),
        Rule::NotYetValid,
        "valid from 2026-11-26T10:00:00Z",
    );
    // Exactly at not-after it is over; a second before it is not.
    assert_eq!(
        rule_of(&w.judge_with(&rules, &s, T0 + 30 * DAY, "a.asc", &signed)),
        Rule::Expired
    );
    assert!(w
        .judge_with(&rules, &s, T0 + 30 * DAY - 1, "a.asc", &signed)
        .result
        .is_ok());
}

#[test]
fn older_serial_is_a_rollback() {
    let w = World::new();
    let signed = w
        .alpha
        .sign(&statement("alpha.example", 7, &["2001:db8:a::/48"]));
    let mut state = SerialState::default();
    state.record("alpha.example", 8);
    rejected(
        &w.judge_with(&test_rules(), &state, T0, "a.asc", &signed),
        Rule::Rollback,
        "lower than the last accepted serial 8",
    );
    state.record("alpha.example", 7);
    let mut equal = SerialState::default();
    equal.record("alpha.example", 7);
    assert!(w
        .judge_with(&test_rules(), &equal, T0, "a.asc", &signed)
        .result
        .is_ok());
}

#[test]
fn prefix_rules() {
    let w = World::new();
    let sign = |p: &[&str]| w.alpha.sign(&statement("alpha.example", 7, p));
    rejected(
        &w.judge("a.asc", &sign(&["2a00::/24"])),
        Rule::PrefixTooBroad,
        "broader than /32",
    );
    rejected(
        &w.judge("a.asc", &sign(&["fd12:3456::/48"])),
        Rule::PrefixNotGlobal,
        "unique-local",
    );
    rejected(
        &w.judge("a.asc", &sign(&["fe80::/64"])),
        Rule::PrefixNotGlobal,
        "link-local",
    );
    rejected(
        &w.judge("a.asc", &sign(&["ff02::/16"])),
        Rule::PrefixNotGlobal,
        "multicast",
    );
    rejected(
        &w.judge("a.asc", &sign(&["::ffff:0:0/96"])),
        Rule::PrefixNotGlobal,
        "IPv4-mapped",
    );
    rejected(
        &w.judge("a.asc", &sign(&["::1/128"])),
        Rule::PrefixNotGlobal,
        "loopback",
    );
    let strict = wotgate::statement::AcceptRules::default();
    let doc = w.judge_with(
        &strict,
        &SerialState::default(),
        T0,
        "a.asc",
        &sign(&["2001:db8:a::/48"]),
    );
    rejected(&doc, Rule::DocumentationPrefix, "documentation prefix");
    assert!(w
        .judge_with(
            &strict,
            &SerialState::default(),
            T0,
            "a.asc",
            &sign(&["2a01:4f8:1::/48"])
        )
        .result
        .is_ok());
}

#[test]
fn ipv4_prefix_is_a_body_error() {
    let w = World::new();
    let body = statement("alpha.example", 7, &["2001:db8:a::/48"])
        .to_body()
        .replace("2001:db8:a::/48", "192.0.2.0/24");
    rejected(
        &w.judge("a.asc", &w.alpha.sign_raw(body.as_bytes())),
        Rule::Body,
        "is IPv4",
    );
}

#[test]
fn too_many_prefixes_and_oversized() {
    let w = World::new();
    let many: Vec<String> = (0..65).map(|i| format!("2001:db8:{i:x}::/48")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let signed = w.alpha.sign(&statement("alpha.example", 7, &refs));
    rejected(
        &w.judge("a.asc", &signed),
        Rule::TooManyPrefixes,
        "65 prefixes, at most 64",
    );
    let small = wotgate::statement::AcceptRules {
        max_size: 1024,
        ..test_rules()
    };
    let j = w.judge_with(&small, &SerialState::default(), T0, "a.asc", &signed);
    rejected(&j, Rule::Oversized, "more than max_statement_size 1024");
    assert_eq!(j.result.unwrap_err().domain, None);
}

#[test]
fn unknown_field_and_malformed_body_under_a_valid_signature() {
    let w = World::new();
    let body = statement("alpha.example", 7, &["2001:db8:a::/48"])
        .to_body()
        .replace("mode: enforce\n", "mode: enforce\nsmtp-port: 25\n");
    rejected(
        &w.judge("a.asc", &w.alpha.sign_raw(body.as_bytes())),
        Rule::Body,
        "unknown field \"smtp-port\"",
    );
    rejected(
        &w.judge("a.asc", &w.alpha.sign_raw(b"hello world\n")),
        Rule::Body,
        "validly signed",
    );
}

#[test]
fn truncated_armour_and_garbage_never_panic() {
    let w = World::new();
    let signed = w
        .alpha
        .sign(&statement("alpha.example", 7, &["2001:db8:a::/48"]));
    for cut in [signed.len() / 2, signed.len() - 40, 30, 0] {
        let j = w.judge("t.asc", &signed[..cut]);
        assert_eq!(rule_of(&j), Rule::Malformed, "cut at {cut}: {:?}", j.result);
    }
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    for len in [1usize, 17, 300, 5000] {
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                rng_state as u8
            })
            .collect();
        assert_eq!(rule_of(&w.judge("g.asc", &garbage)), Rule::Malformed);
        let mut armoured = b"-----BEGIN PGP MESSAGE-----\n\n".to_vec();
        armoured.extend_from_slice(&garbage);
        assert!(w.judge("g.asc", &armoured).result.is_err());
    }
    // A cleartext-signed or detached form is not a statement.
    let clear = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nversion: WOTGATEv1\n";
    assert_eq!(rule_of(&w.judge("c.asc", clear)), Rule::Malformed);
}

#[test]
fn superseded_serials_within_one_run() {
    let w = World::new();
    let old = w
        .alpha
        .sign(&statement("alpha.example", 7, &["2001:db8:a::/48"]));
    let new = w
        .alpha
        .sign(&statement("alpha.example", 9, &["2001:db8:b::/48"]));
    let p = sequoia_openpgp::policy::StandardPolicy::new();
    let rules = test_rules();
    let state = SerialState::default();
    let acc = wotgate::statement::Acceptor {
        rules: &rules,
        trust: &w.view,
        policy: &p,
        at: at(T0),
        state: &state,
    };
    let js = acc.judge_all([("new.asc", new.as_slice()), ("old.asc", old.as_slice())]);
    assert_eq!(js[0].file, "new.asc");
    assert!(js[0].result.is_ok());
    rejected(
        &js[1],
        Rule::Superseded,
        "superseded by serial 9 in new.asc",
    );
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_statements_never_panic_and_never_pass_altered() {
    let w = World::new();
    let st = statement("alpha.example", 7, &["2001:db8:a::/48", "2001:db8:b::/48"]);
    let signed = w.alpha.sign(&st);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..400 {
        let mut m = signed.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(m.len());
            match rng.below(3) {
                0 => m[i] ^= 1 << rng.below(8),
                1 => {
                    m.remove(i);
                }
                _ => m.insert(i, b"A+/=\n-"[rng.below(6)]),
            }
        }
        // Whatever the armour tolerates, an accepted statement is the signed one.
        if let Ok(a) = w.judge("m.asc", &m).result {
            assert_eq!(a.statement, st);
        }
    }
}

#[test]
fn every_body_the_parser_accepts_is_canonical() {
    use wotgate::statement::Statement;
    let body = statement("alpha.example", 7, &["2001:db8:a::/48", "2001:db8:b::/48"])
        .to_body()
        .into_bytes();
    let alphabet = b"0123456789abcdefxyz:/.- \nTZ";
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut m = body.clone();
        for _ in 0..1 + rng.below(2) {
            let i = rng.below(m.len());
            match rng.below(3) {
                0 => m[i] = alphabet[rng.below(alphabet.len())],
                1 => {
                    m.remove(i);
                }
                _ => m.insert(i, alphabet[rng.below(alphabet.len())]),
            }
        }
        if let Ok(s) = Statement::parse(&m) {
            accepted += 1;
            assert_eq!(
                s.to_body().as_bytes(),
                &m[..],
                "two spellings of one statement"
            );
        }
    }
    // Some mutations (a digit of the serial, a prefix) stay valid.
    assert!(accepted > 0);
}

#[test]
fn compressed_statements_are_rejected() {
    use sequoia_openpgp::policy::StandardPolicy;
    use sequoia_openpgp::serialize::stream::{Armorer, Compressor, LiteralWriter, Message, Signer};
    let w = World::new();
    let body = statement("alpha.example", 7, &["2001:db8:a::/48"]).to_body();
    let kp = wotgate::statement::signed::signing_keypair(
        &w.alpha.tsk,
        &StandardPolicy::new(),
        at(T0 - 3600),
        None,
    )
    .unwrap();
    let mut out = Vec::new();
    {
        let m = Message::new(&mut out);
        let m = Armorer::new(m).build().unwrap();
        let m = Compressor::new(m).build().unwrap();
        let m = Signer::new(m, kp)
            .unwrap()
            .creation_time(at(T0 - 3600))
            .build()
            .unwrap();
        let mut l = LiteralWriter::new(m).build().unwrap();
        l.write_all(body.as_bytes()).unwrap();
        l.finalize().unwrap();
    }
    rejected(&w.judge("z.asc", &out), Rule::Malformed, "compressed");
}
