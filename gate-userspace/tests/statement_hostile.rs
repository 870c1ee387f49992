//! Hostile inputs and faults (issue "Hostile input and faults"): trailing
//! data around the armour, two spellings of one statement, error messages
//! that name what really happened, and the rollback state file.

mod statement_fixtures;

use std::io::{Read, Write};
use std::process::{Command, Output};

use sequoia_openpgp as openpgp;

use openpgp::{
    armor,
    policy::StandardPolicy,
    serialize::{
        stream::{Armorer, Encryptor, LiteralWriter, Message, Signer},
        Marshal,
    },
    types::HashAlgorithm,
};
use statement_fixtures::*;
use wotgate::statement::{
    signed, state::StateError, AcceptRules, Judgement, Rule, SerialState, Statement,
};

fn rule_of(j: &Judgement) -> Rule {
    match &j.result {
        Ok(a) => panic!("{} was accepted as {:?}", j.file, a.role),
        Err(r) => r.rule,
    }
}

/// The rejection text of `j`, asserting its rule.
fn rejection(j: &Judgement, rule: Rule) -> String {
    assert_eq!(rule_of(j), rule, "{:?}", j.result);
    j.result.as_ref().unwrap_err().to_string()
}

fn alpha_statement() -> Statement {
    statement("alpha.example", 7, &["2001:db8:a::/48"])
}

/// The binary packets inside an armoured message.
fn dearmor(armoured: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    armor::Reader::from_bytes(
        armoured,
        armor::ReaderMode::Tolerant(Some(armor::Kind::Message)),
    )
    .read_to_end(&mut raw)
    .unwrap();
    raw
}

/// `raw` packets armoured as a message.
fn armour(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = armor::Writer::new(&mut out, armor::Kind::Message).unwrap();
    w.write_all(raw).unwrap();
    w.finalize().unwrap();
    out
}

fn marker() -> Vec<u8> {
    let mut m = Vec::new();
    openpgp::Packet::Marker(Default::default())
        .serialize(&mut m)
        .unwrap();
    m
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Signs `body` as alpha at `t` with `hash`, optionally encrypting to a password.
fn sign_with(w: &World, body: &[u8], t: u64, hash: HashAlgorithm, password: bool) -> Vec<u8> {
    let kp = signed::signing_keypair(&w.alpha.tsk, &StandardPolicy::new(), at(t), None).unwrap();
    let mut out = Vec::new();
    {
        let m = Message::new(&mut out);
        let m = Armorer::new(m).build().unwrap();
        let m = if password {
            Encryptor::with_passwords(m, Some("pw")).build().unwrap()
        } else {
            m
        };
        let m = Signer::new(m, kp)
            .unwrap()
            .hash_algo(hash)
            .unwrap()
            .creation_time(at(t))
            .build()
            .unwrap();
        let mut l = LiteralWriter::new(m).build().unwrap();
        l.write_all(body).unwrap();
        l.finalize().unwrap();
    }
    out
}

/// Everything after the armour's end line except whitespace, anything
/// before its first line, and any packet besides the one-pass signature,
/// the literal data and the signature, is `malformed`.
#[test]
fn trailing_data_and_extra_packets_are_malformed() {
    let w = World::new();
    let signed = w.alpha.sign(&alpha_statement());
    let other = w
        .alpha
        .sign(&statement("alpha.example", 8, &["2001:db8:b::/48"]));
    let raw = dearmor(&signed);
    let text = |edit: &dyn Fn(String) -> String| edit(String::from_utf8(signed.clone()).unwrap());
    let trailing = "trailing data after the -----END PGP MESSAGE----- line";
    let shape =
        "a statement is exactly a one-pass signature, a literal data packet and a signature";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("text after", cat(&[&signed, b"serial: 9\n"]), trailing),
        (
            "text on the end line",
            text(&|s| s.replace("END PGP MESSAGE-----", "END PGP MESSAGE----- x")).into_bytes(),
            "is not exactly -----END PGP MESSAGE-----",
        ),
        (
            "binary after",
            cat(&[&signed, &[0xff, 0x00, 0x90, 0x0d]]),
            trailing,
        ),
        ("a second message after", cat(&[&signed, &other]), trailing),
        (
            "a marker packet after",
            cat(&[&signed, &marker()]),
            trailing,
        ),
        (
            "an armoured marker after",
            cat(&[&signed, &armour(&marker())]),
            trailing,
        ),
        (
            "text before",
            cat(&[b"Hello\n", &signed]),
            "with nothing before the armour",
        ),
        (
            "a marker packet first",
            armour(&cat(&[&marker(), &raw])),
            "packet 1 is a Marker Packet",
        ),
        (
            "a marker packet last",
            armour(&cat(&[&raw, &marker()])),
            "a Marker Packet after the signature",
        ),
        (
            "a second message inside",
            armour(&cat(&[&raw, &raw])),
            shape,
        ),
        (
            "an armour header",
            text(&|s| s.replacen("MESSAGE-----\n", "MESSAGE-----\nComment: unsigned\n", 1))
                .into_bytes(),
            "statements carry none",
        ),
        (
            "a junk line in the header",
            text(&|s| s.replacen("MESSAGE-----\n\n", "MESSAGE-----\njunk\n\n", 1)).into_bytes(),
            "must be empty",
        ),
    ];
    for (what, bytes, needle) in &cases {
        let j = w.judge("t.asc", bytes);
        let text = rejection(&j, Rule::Malformed);
        assert!(text.contains(needle), "{what}: {text}");
    }
    // Trailing whitespace (spaces, tabs, blank lines, CRLF) is fine, as are
    // CRLF line ends throughout.
    let spaced = cat(&[&signed, b"\n \t\r\n\n"]);
    assert!(w.judge("s.asc", &spaced).result.is_ok());
    let crlf = String::from_utf8(signed.clone())
        .unwrap()
        .replace('\n', "\r\n");
    assert!(w.judge("c.asc", crlf.as_bytes()).result.is_ok());
    // `show` reads the same envelope.
    assert!(signed::peek(&cat(&[&signed, &other])).is_err());
    assert!(signed::peek(&signed).is_ok());
}

/// An encrypted statement is named as such (the packet check meets the
/// encryption packet first).
#[test]
fn encrypted_statement_is_called_encrypted() {
    let w = World::new();
    let body = alpha_statement().to_body();
    let encrypted = sign_with(&w, body.as_bytes(), T0 - 3600, HashAlgorithm::SHA256, true);
    let text = rejection(&w.judge("x.asc", &encrypted), Rule::Malformed);
    assert!(text.contains("statement is encrypted"), "{text}");
    assert!(!text.contains("Malformed OpenPGP message"), "{text}");
}

/// `body` signed by `w.alpha`, judged at T0.
fn judge_body(w: &World, body: &str) -> Judgement {
    w.judge("b.asc", &w.alpha.sign_raw(body.as_bytes()))
}

#[test]
fn one_spelling_per_statement() {
    let w = World::new();
    let fa = "AA:".repeat(31) + "AA";
    let fb = "BB:".repeat(31) + "BB";
    let mut st = statement("alpha.example", 7, &["2001:db8:a::/48", "2001:db8:b::/48"]);
    st.tls_key_sha256 = vec![fa.clone(), fb.clone()];
    let body = st.to_body();
    assert!(judge_body(&w, &body).result.is_ok());
    let swapped_prefixes = body
        .replace("db8:a::", "db8:X::")
        .replace("db8:b::", "db8:a::")
        .replace("db8:X::", "db8:b::");
    assert!(rejection(&judge_body(&w, &swapped_prefixes), Rule::Body)
        .contains("prefix 2001:db8:a::/48 must come before 2001:db8:b::/48"));
    let swapped_keys = body.replace(&fa, "X").replace(&fb, &fa).replace('X', &fb);
    assert!(rejection(&judge_body(&w, &swapped_keys), Rule::Body)
        .contains(&format!("tls-key-sha256 {fa} must come before {fb}")));
    // By address, then length: a covering prefix comes before what it covers.
    let nested = statement("alpha.example", 7, &["2001:db8:a::/48", "2001:db8:a::/56"]).to_body();
    assert!(judge_body(&w, &nested).result.is_ok());
    let reversed = nested
        .replace("/48", "/X")
        .replace("/56", "/48")
        .replace("/X", "/56");
    assert!(rejection(&judge_body(&w, &reversed), Rule::Body).contains("must come before"));
    // `to_body` writes the one spelling whatever order the lists are in.
    let mut unsorted = st.clone();
    unsorted.prefixes.reverse();
    unsorted.tls_key_sha256.reverse();
    unsorted.prefixes.push(unsorted.prefixes[0]);
    assert_eq!(unsorted.to_body(), body);
}

#[test]
fn statement_new_sorts_and_deduplicates() {
    let fa = "aa".repeat(32);
    let fb = "BB:".repeat(31) + "BB";
    let out = ok(&[
        "statement",
        "new",
        "--domain",
        "alpha.example",
        "--prefix",
        "2a01:4f8:2::/48",
        "--prefix",
        "2a01:4f8:1::/56",
        "--prefix",
        "2a01:4f8:1::/48",
        "--prefix",
        "2a01:4f8:2::/48",
        "--tls-key-fingerprint",
        &fb,
        "--tls-key-fingerprint",
        &fa,
        "--tls-key-fingerprint",
        &fb,
        "--not-before",
        "2026-11-24T10:00:00Z",
    ]);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("prefix") || l.starts_with("tls"))
        .collect();
    assert_eq!(
        lines,
        [
            "prefix: 2a01:4f8:1::/48",
            "prefix: 2a01:4f8:1::/56",
            "prefix: 2a01:4f8:2::/48",
            &format!("tls-key-sha256: {}", "AA:".repeat(31) + "AA"),
            &format!("tls-key-sha256: {fb}"),
        ]
    );
    assert!(Statement::parse(out.as_bytes()).is_ok());
}

fn wotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wotgate"))
        .args(args)
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("run wotgate")
}

fn ok(args: &[&str]) -> String {
    let out = wotgate(args);
    assert!(
        out.status.success(),
        "wotgate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bad_signatures_are_named_for_what_they_are() {
    let w = World::new();
    let body = alpha_statement().to_body();
    let good = sign_with(&w, body.as_bytes(), T0 - 3600, HashAlgorithm::SHA256, false);
    assert!(w.judge("g.asc", &good).result.is_ok());

    let sha1 = sign_with(&w, body.as_bytes(), T0 - 3600, HashAlgorithm::SHA1, false);
    let text = rejection(&w.judge("s.asc", &sha1), Rule::BadSignature);
    assert!(!text.contains("forged"), "{text}");
    assert!(text.contains("SHA1"), "{text}");
    assert!(text.contains("rejected by the standard policy"), "{text}");

    let rules = test_rules();
    let early = w.judge_with(
        &rules,
        &SerialState::default(),
        T0 - 2 * 3600,
        "e.asc",
        &good,
    );
    let text = rejection(&early, Rule::BadSignature);
    assert!(!text.contains("forged"), "{text}");
    assert!(
        text.contains(
            "made at 2026-11-25T09:00:00Z, after the reference time 2026-11-25T08:00:00Z"
        ),
        "{text}"
    );
}

#[test]
fn whole_body_problems_have_no_line_number() {
    let w = World::new();
    let body = alpha_statement().to_body().replace("mode: enforce\n", "");
    let text = rejection(&judge_body(&w, &body), Rule::Body);
    assert!(text.contains("body: missing field \"mode\""), "{text}");
    assert!(!text.contains("line 0"), "{text}");
    let e = Statement::parse(b"").unwrap_err().to_string();
    assert_eq!(e, "body: empty");
    let e = Statement::parse(b"version: WOTGATEv1\nx\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("body line 2: "), "{e}");
}

#[test]
fn prefixes_covering_special_ranges_are_named_as_such() {
    use wotgate::statement::accept::check_prefix;
    let rules = AcceptRules::default();
    let msg = |p: &str| check_prefix(&p.parse().unwrap(), &rules).unwrap_err().1;
    let m = msg("::/1");
    assert!(!m.contains("is the unspecified address"), "{m}");
    assert!(
        m.contains("covers the unspecified address, loopback and IPv4-mapped"),
        "{m}"
    );
    assert!(msg("::/128").contains("::/128 is the unspecified address"));
    assert!(msg("fd12:3456::/48").contains("is unique-local (fc00::/7)"));
    assert!(msg("c000::/2").contains("covers unique-local, link-local and multicast"));
    assert!(msg("4000::/3").contains("is not global unicast"));
    let m = msg("2000::/3");
    assert!(
        m.contains("covers the documentation prefix 2001:db8::/32"),
        "{m}"
    );
    let m = msg("2001:db8:1::/48");
    assert!(
        m.contains("is inside the documentation prefix 2001:db8::/32"),
        "{m}"
    );
}

/// A key like the fixtures' whose signing subkey (or whole certificate)
/// expires `days` after its creation a year before T0.
fn expiring_key(whole: bool, days: u64) -> openpgp::Cert {
    use openpgp::cert::CertBuilder;
    use openpgp::types::KeyFlags;
    let period = std::time::Duration::from_secs(days * DAY);
    let b = CertBuilder::new()
        .set_creation_time(at(T0 - 365 * DAY))
        .add_userid("<postmaster@alpha.example>");
    let b = if whole {
        b.set_validity_period(period).add_signing_subkey()
    } else {
        b.add_subkey(KeyFlags::empty().set_signing(), period, None)
    };
    b.generate().unwrap().0
}

#[test]
fn sign_says_why_a_key_cannot_sign() {
    let p = StandardPolicy::new();
    let why = |tsk: &openpgp::Cert| {
        signed::signing_keypair(tsk, &p, at(T0), None)
            .err()
            .expect("cannot sign")
            .to_string()
    };
    let sub = why(&expiring_key(false, 30));
    assert!(sub.contains("expired at 2025-12-25T10:00:00Z"), "{sub}");
    assert!(!sub.contains("no usable"), "{sub}");
    let whole = why(&expiring_key(true, 30));
    assert!(whole.contains("expired at 2025-12-25T10:00:00Z"), "{whole}");
    let (bare, _) = openpgp::cert::CertBuilder::new()
        .set_creation_time(at(T0 - 365 * DAY))
        .add_userid("<postmaster@alpha.example>")
        .generate()
        .unwrap();
    let none = why(&bare);
    assert!(none.contains("no signing-capable key"), "{none}");
    // A key created after the signing time.
    let early = signed::signing_keypair(
        &Key::new("<a@alpha.example>").tsk,
        &p,
        at(T0 - 400 * DAY),
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(!early.contains("tv_sec"), "{early}");
    assert!(!early.contains(" now"), "{early}");
}

/// No error text says the same thing twice (`X: X`).
fn assert_not_doubled(text: &str) {
    let io = "No such file or directory (os error 2)";
    assert!(text.matches(io).count() <= 1, "{text}");
    let nd = "Not a directory (os error 20)";
    assert!(text.matches(nd).count() <= 1, "{text}");
}

#[test]
fn statement_commands_name_io_errors_once() {
    let dir = temp_dir("stmt-doubled");
    let missing = dir.join("missing");
    let m = missing.to_str().unwrap();
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let f = a_file.to_str().unwrap();
    let body = dir.join("body");
    std::fs::write(&body, alpha_statement().to_body()).unwrap();
    for args in [
        vec!["statement", "show", m],
        vec!["statement", "sign", "--key", m, body.to_str().unwrap()],
        vec!["statement", "sign", "--key", f, m],
        vec![
            "statement",
            "verify",
            f,
            "--keyring",
            f,
            "--root",
            &"AB".repeat(20),
            "--state-dir",
            f,
        ],
    ] {
        let out = wotgate(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_not_doubled(&err);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn state_file_is_read_with_a_size_bound() {
    let dir = temp_dir("state-bound");
    let f = std::fs::File::create(dir.join("serials")).unwrap();
    f.set_len(64 << 20 | 1).unwrap();
    let e = SerialState::load(&dir).unwrap_err().to_string();
    assert!(e.contains("larger than"), "{e}");
    assert!(e.contains("serials"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_state_save_names_the_file_and_keeps_the_old_state() {
    let dir = temp_dir("state-save");
    let mut s = SerialState::default();
    s.record("alpha.example", 7);
    s.save(&dir).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, ["serials"]);
    // The temporary file cannot be written: the error names it, and the
    // previous state stays.
    std::fs::create_dir(dir.join(".serials.tmp")).unwrap();
    let mut newer = s.clone();
    newer.record("alpha.example", 9);
    let e = newer.save(&dir).unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(e));
    assert!(text.contains(".serials.tmp"), "{text}");
    assert!(text.contains("previous state is unchanged"), "{text}");
    assert_eq!(
        SerialState::load(&dir).unwrap().last("alpha.example"),
        Some(7)
    );
    // A state directory that is a file.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "keep me").unwrap();
    let e = newer.save(&file).unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(e));
    assert!(text.contains("not-a-dir"), "{text}");
    assert_not_doubled(&text);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let e: StateError = SerialState::load(&file).unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(e));
    assert!(text.contains("not-a-dir"), "{text}");
    assert_not_doubled(&text);
    std::fs::remove_dir_all(&dir).unwrap();
}
