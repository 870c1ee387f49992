//! Shared by the web-of-trust tests: loading the fixture networks, and the
//! table of cases (network, settings, expected verdicts) the tests check.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::HashAlgorithm;
use sequoia_openpgp::Fingerprint;
use wotgate::wot::{
    evaluate, IntroducerMode, KeyStatus, Keyring, RejectReason, TrustReport, TrustSettings,
    UntrustedReason,
};

/// The reference time of every fixture: 2025-01-01T00:00:00Z.
pub const REF_SECS: u64 = 1_735_689_600;

pub fn reference_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(REF_SECS)
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wot")
}

/// A loaded fixture network.
pub struct Net {
    pub name: String,
    pub keyring_path: PathBuf,
    pub names: BTreeMap<String, Fingerprint>,
    pub ring: Keyring,
}

impl Net {
    pub fn load(name: &str) -> Net {
        let dir = fixtures().join(name);
        let text = std::fs::read_to_string(dir.join("names.txt"))
            .unwrap_or_else(|e| panic!("{name}/names.txt: {e}"));
        let names = text
            .lines()
            .map(|l| {
                let (n, f) = l.split_once(' ').expect("name fingerprint");
                (
                    n.to_string(),
                    Fingerprint::from_hex(f).expect("fingerprint"),
                )
            })
            .collect();
        let keyring_path = dir.join("keyring.pgp");
        let (ring, problems) = Keyring::load(std::slice::from_ref(&keyring_path));
        assert!(problems.is_empty(), "{name}: {problems:?}");
        Net {
            name: name.into(),
            keyring_path,
            names,
            ring,
        }
    }

    pub fn fpr(&self, n: &str) -> Fingerprint {
        self.names
            .get(n)
            .unwrap_or_else(|| panic!("{}: no key {n}", self.name))
            .clone()
    }

    pub fn name_of(&self, f: &Fingerprint) -> String {
        self.names
            .iter()
            .find(|(_, v)| *v == f)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| f.to_hex())
    }

    pub fn settings(&self, case: &Case) -> TrustSettings {
        let mut s = TrustSettings::new(case.roots.iter().map(|r| self.fpr(r)), reference_time());
        s.depth = case.depth;
        s.mode = case.mode;
        s.refuse = case.refuse.iter().map(|r| self.fpr(r)).collect();
        s.ignore_certifications_by = case.ignore.iter().map(|r| self.fpr(r)).collect();
        s
    }

    pub fn eval(&self, case: &Case) -> TrustReport {
        evaluate(&self.ring, &self.settings(case), &StandardPolicy::new())
    }
}

/// An expected verdict.
#[derive(Clone, Debug)]
pub enum Expect {
    Root,
    Trusted(usize),
    /// Refused; would be trusted at this depth (None: would not be).
    Refused(Option<usize>),
    NoPath,
    TooLong(usize),
    /// Only through these ignored introducers.
    Ignored(&'static [&'static str]),
    NotDelegated,
    Revoked,
    Expired,
    /// A certification by this key that does not count, for this reason.
    Cert(&'static str, RejectReason),
}

impl Expect {
    /// Whether GnuPG (everyone fully trusted, refused keys too) should
    /// consider the key valid.
    pub fn gpg_valid(&self) -> bool {
        matches!(
            self,
            Expect::Root | Expect::Trusted(_) | Expect::Refused(Some(_))
        )
    }
}

pub struct Case {
    pub net: &'static str,
    pub roots: &'static [&'static str],
    pub depth: usize,
    pub mode: IntroducerMode,
    pub refuse: &'static [&'static str],
    pub ignore: &'static [&'static str],
    pub expect: Vec<(&'static str, Expect)>,
}

fn case(net: &'static str, depth: usize, expect: Vec<(&'static str, Expect)>) -> Case {
    Case {
        net,
        roots: &["Root"],
        depth,
        mode: IntroducerMode::Certifications,
        refuse: &[],
        ignore: &[],
        expect,
    }
}

/// Every `certifications`-mode case (the GnuPG oracle runs all of them).
pub fn certification_cases() -> Vec<Case> {
    let mut v = path_cases();
    v.extend(exception_cases());
    v.extend(validity_cases());
    v.extend(other_cases());
    v
}

/// Paths: direct, chains at every depth, cycles, one root or two.
fn path_cases() -> Vec<Case> {
    use Expect::*;
    let mut v = vec![
        case(
            "direct",
            2,
            vec![("Root", Root), ("Alice", Trusted(1)), ("Bob", NoPath)],
        ),
        case(
            "level-one",
            2,
            vec![("Alice", Trusted(1)), ("Bob", Trusted(2))],
        ),
        case(
            "level-one",
            1,
            vec![("Alice", Trusted(1)), ("Bob", TooLong(2))],
        ),
    ];
    let ks = ["K1", "K2", "K3", "K4", "K5"];
    for n in 1..=4 {
        let mut e = vec![("Root", Root)];
        for (i, k) in ks.iter().enumerate() {
            let d = i + 1;
            e.push((k, if d <= n { Trusted(d) } else { TooLong(d) }));
        }
        v.push(case("chain", n, e));
    }
    v.push(case(
        "cycles",
        3,
        vec![
            ("Root", Root),
            ("A", Trusted(1)),
            ("B", Trusted(2)),
            ("C", Trusted(3)),
            ("D", TooLong(4)),
        ],
    ));
    let mut two = case(
        "two-roots",
        2,
        vec![
            ("Root1", Root),
            ("Root2", Root),
            ("A", Trusted(1)),
            ("B", Trusted(2)),
            ("C", Trusted(2)),
            ("D", Trusted(1)),
            ("E", TooLong(3)),
        ],
    );
    two.roots = &["Root1", "Root2"];
    v.push(two);
    let mut one = case(
        "two-roots",
        2,
        vec![("C", TooLong(3)), ("D", NoPath), ("Root2", NoPath)],
    );
    one.roots = &["Root1"];
    v.push(one);
    v
}

/// Refused keys and ignored introducers.
fn exception_cases() -> Vec<Case> {
    use Expect::*;
    let mut v = Vec::new();
    let mut c = case(
        "refuse",
        2,
        vec![
            ("M", Refused(Some(1))),
            ("N", Trusted(1)),
            ("X", Trusted(2)),
            ("Y", TooLong(3)),
        ],
    );
    c.refuse = &["M"];
    v.push(c);
    let mut c = case(
        "ignore",
        2,
        vec![("M", Trusted(1)), ("X", Ignored(&["M"])), ("Z", Trusted(2))],
    );
    c.ignore = &["M"];
    v.push(c);
    let mut c = case(
        "refuse-ignore",
        2,
        vec![
            ("M", Refused(Some(1))),
            ("N", Trusted(1)),
            ("X", Ignored(&["M"])),
            ("W", Trusted(2)),
        ],
    );
    c.refuse = &["M"];
    c.ignore = &["M"];
    v.push(c);
    v
}

/// Keys and certifications that do not count (revoked, expired, weak, bad,
/// too early).
fn validity_cases() -> Vec<Case> {
    use Expect::*;
    vec![
        case(
            "revoked-key",
            2,
            vec![("A", Revoked), ("B", NoPath), ("C", Trusted(1))],
        ),
        case(
            "revoked-certification",
            2,
            vec![
                ("A", Cert("Root", RejectReason::Revoked)),
                ("B", Trusted(1)),
            ],
        ),
        case(
            "expired-key",
            2,
            vec![("A", Expired), ("B", NoPath), ("C", Trusted(1))],
        ),
        case(
            "expired-certification",
            2,
            vec![
                ("A", Cert("Root", RejectReason::Expired)),
                ("B", Trusted(1)),
            ],
        ),
        case(
            "retraction",
            2,
            vec![
                ("A", Cert("Root", RejectReason::Expired)),
                ("B", Trusted(1)),
            ],
        ),
        case(
            "sha1",
            2,
            vec![
                (
                    "A",
                    Cert("Root", RejectReason::WeakHash(HashAlgorithm::SHA1)),
                ),
                ("B", Trusted(1)),
                ("C", NoPath),
            ],
        ),
        case(
            "bad-signature",
            2,
            vec![
                ("A", Trusted(1)),
                ("B", Cert("Root", RejectReason::BadSignature)),
            ],
        ),
        case(
            "predates-issuer",
            2,
            vec![
                ("A", Cert("Root", RejectReason::PredatesIssuer)),
                ("B", Trusted(1)),
            ],
        ),
    ]
}

/// Flooding, and the trust-signature network read as plain certifications.
fn other_cases() -> Vec<Case> {
    use Expect::*;
    vec![
        case(
            "flooded",
            2,
            vec![("A", Trusted(1)), ("B", Trusted(1)), ("K12", Trusted(1))],
        ),
        // The trust-signature network read as plain certifications: everything
        // within two hops counts, whatever the trust signatures say.
        case(
            "tsig",
            2,
            vec![
                ("CA1", Trusted(1)),
                ("Alice", Trusted(2)),
                ("Mallory", Trusted(2)),
                ("CA3", Trusted(2)),
                ("Bob", TooLong(3)),
                ("Q", Trusted(2)),
                ("S", Trusted(2)),
                ("T", TooLong(3)),
                ("V", Trusted(2)),
                ("W", Trusted(2)),
            ],
        ),
    ]
}

/// `trust-signatures`-mode cases.
pub fn tsig_cases() -> Vec<Case> {
    use Expect::*;
    let ts = |depth, expect| Case {
        mode: IntroducerMode::TrustSignatures,
        ..case("tsig", depth, expect)
    };
    vec![
        ts(
            2,
            vec![
                ("Root", Root),
                ("CA1", Trusted(1)),
                ("Alice", Trusted(2)),
                ("Mallory", NotDelegated),
                ("CA3", Trusted(2)),
                ("Bob", TooLong(3)),
                ("P", Trusted(1)),
                ("Q", NotDelegated),
                ("CA2", Trusted(1)),
                ("S", Trusted(2)),
                ("U", Trusted(2)),
                ("CA4", Trusted(1)),
                ("V", NotDelegated),
                ("CA5", Trusted(1)),
                ("W", NotDelegated),
            ],
        ),
        ts(
            3,
            vec![
                ("Bob", Trusted(3)),
                ("T", NotDelegated),
                ("Mallory", NotDelegated),
            ],
        ),
        ts(
            1,
            vec![
                ("CA1", Trusted(1)),
                ("Alice", TooLong(2)),
                ("Q", NotDelegated),
            ],
        ),
    ]
}

/// Checks one case; returns a description of every mismatch.
pub fn check(net: &Net, case: &Case, report: &TrustReport) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, want) in &case.expect {
        let k = report
            .key(&net.fpr(name))
            .unwrap_or_else(|| panic!("{name} not in report"));
        let ok = match (want, &k.status) {
            (Expect::Root, KeyStatus::Root) => true,
            (Expect::Trusted(d), KeyStatus::Trusted { depth }) => d == depth,
            (Expect::Refused(would), KeyStatus::Refused) => {
                let best = k
                    .userids
                    .iter()
                    .filter(|u| u.authenticated_if_not_refused)
                    .filter_map(|u| u.depth)
                    .min();
                best == *would && k.userids.iter().all(|u| !u.authenticated)
            }
            (
                Expect::NoPath,
                KeyStatus::Untrusted {
                    reason: UntrustedReason::NoPath,
                },
            ) => true,
            (
                Expect::TooLong(d),
                KeyStatus::Untrusted {
                    reason: UntrustedReason::PathTooLong { needs_depth },
                },
            ) => d == needs_depth,
            (
                Expect::Ignored(names),
                KeyStatus::Untrusted {
                    reason: UntrustedReason::OnlyThroughIgnoredIntroducer { introducers },
                },
            ) => {
                let mut want: Vec<_> = names.iter().map(|n| net.fpr(n)).collect();
                want.sort();
                &want == introducers
            }
            (
                Expect::NotDelegated,
                KeyStatus::Untrusted {
                    reason: UntrustedReason::NotDelegated,
                },
            ) => true,
            (
                Expect::Revoked,
                KeyStatus::Untrusted {
                    reason: UntrustedReason::Revoked,
                },
            ) => true,
            (
                Expect::Expired,
                KeyStatus::Untrusted {
                    reason: UntrustedReason::Expired,
                },
            ) => true,
            (
                Expect::Cert(issuer, why),
                KeyStatus::Untrusted {
                    reason: UntrustedReason::Certification { issuer: i, reason },
                },
            ) => net.fpr(issuer) == *i && why == reason,
            _ => false,
        };
        if !ok {
            bad.push(format!(
                "{} (depth {}, {:?}): {name}: expected {want:?}, got {:?}",
                case.net, case.depth, case.mode, k.status
            ));
        }
    }
    bad
}
