//! Unit tests of the settings: one rule named in two vocabularies, trust
//! settings extending the system's, statement rules.

use super::*;

const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

fn opts() -> TrustOptions {
    TrustOptions {
        roots: vec![ROOT.to_lowercase()],
        ..Default::default()
    }
}

#[test]
fn one_rule_two_vocabularies() {
    let at = SystemTime::UNIX_EPOCH;
    let s = opts().validate(Vocabulary::ConfigFile, at).unwrap();
    assert_eq!(s.depth, DEFAULT_DEPTH);
    assert_eq!(s.roots.iter().next().unwrap().to_hex(), ROOT);
    let deep = TrustOptions {
        depth: Some(17),
        ..opts()
    };
    let e = deep.validate(Vocabulary::ConfigFile, at).unwrap_err();
    assert_eq!(e.to_string(), "trust.depth = 17: at most 16");
    let e = deep.validate(Vocabulary::CommandLine, at).unwrap_err();
    assert_eq!(e.to_string(), "--depth 17: at most 16");
    let refused = TrustOptions {
        refuse: vec![ROOT.into()],
        ..opts()
    };
    let e = refused.validate(Vocabulary::CommandLine, at).unwrap_err();
    assert_eq!(e.key, "--refuse");
    let mode = TrustOptions {
        mode: Some("gpg".into()),
        ..opts()
    };
    let e = mode.validate(Vocabulary::CommandLine, at).unwrap_err();
    assert_eq!(e.key, "--introducer-mode");
    let none = TrustOptions::default();
    assert_eq!(
        none.validate(Vocabulary::ConfigFile, at).unwrap_err().key,
        "trust.roots"
    );
}

#[test]
fn extending_adds_and_overrides() {
    const OTHER: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let at = SystemTime::UNIX_EPOCH;
    let base = TrustOptions {
        depth: Some(3),
        max_certifications_per_cert: Some(5),
        ..opts()
    }
    .validate(Vocabulary::ConfigFile, at)
    .unwrap();
    let more = TrustOptions {
        roots: vec![OTHER.into()],
        mode: Some("trust-signatures".into()),
        ..Default::default()
    };
    let s = more
        .validate_extending(Vocabulary::RecipientFile, &base)
        .unwrap();
    assert_eq!(s.roots.len(), 2);
    assert_eq!((s.depth, s.mode), (3, IntroducerMode::TrustSignatures));
    assert_eq!(s.limits.max_certifications_per_cert, 5);
    let none = TrustOptions::default();
    assert_eq!(
        none.validate_extending(Vocabulary::RecipientFile, &base)
            .unwrap()
            .roots,
        base.roots
    );
    let e = TrustOptions {
        depth: Some(17),
        ..Default::default()
    }
    .validate_extending(Vocabulary::RecipientFile, &base)
    .unwrap_err();
    assert_eq!(e.to_string(), "depth = 17: at most 16");
    assert_eq!(
        Vocabulary::RecipientFile.name(Key::IgnoreCertificationsBy),
        "ignore_certifications_by"
    );
}

#[test]
fn statement_rules() {
    let (r, t) = StatementOptions::default()
        .validate(Vocabulary::ConfigFile)
        .unwrap();
    assert_eq!(r, AcceptRules::default());
    assert_eq!(t, TestingPolicy::Allow);
    let e = StatementOptions {
        max_size: Some(10),
        ..Default::default()
    }
    .validate(Vocabulary::CommandLine)
    .unwrap_err();
    assert_eq!(e.key, "--max-statement-size");
}
