//! Test fixtures for statements: real sequoia keys generated at fixed times,
//! real signatures, and a trust view with known judgements.
#![allow(dead_code)]

use std::time::SystemTime;

use openpgp::{cert::CertBuilder, policy::StandardPolicy, Cert};
use sequoia_openpgp as openpgp;
use wotgate::model::time::to_system_time;
use wotgate::statement::{
    signed, AcceptRules, Acceptor, Judgement, Mode, SerialState, SignerTrust, Statement,
};

#[path = "../../examples/common/static_trust.rs"]
mod static_trust;
pub use static_trust::StaticTrust;

/// The reference time of the tests: 2026-11-25T10:00:00Z.
pub const T0: u64 = 1_795_600_800;
pub const DAY: u64 = 86_400;

pub fn at(t: u64) -> SystemTime {
    to_system_time(t)
}

pub struct Key {
    pub tsk: Cert,
}

impl Key {
    /// The primary key as a signer (certifications, revocations).
    pub fn signer(&self) -> openpgp::crypto::KeyPair {
        self.tsk
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .unwrap()
            .into_keypair()
            .unwrap()
    }

    pub fn new(userid: &str) -> Key {
        Key::with_userids(&[userid])
    }

    pub fn with_userids(userids: &[&str]) -> Key {
        let mut b = CertBuilder::new()
            .set_creation_time(at(T0 - 365 * DAY))
            .add_signing_subkey();
        for u in userids {
            b = b.add_userid(*u);
        }
        let (tsk, _) = b.generate().expect("generate key");
        Key { tsk }
    }

    pub fn public(&self) -> Cert {
        self.tsk.clone().strip_secret_key_material()
    }

    pub fn fpr(&self) -> openpgp::Fingerprint {
        self.tsk.fingerprint()
    }

    /// Signs raw body bytes an hour before T0.
    pub fn sign_raw(&self, body: &[u8]) -> Vec<u8> {
        let p = StandardPolicy::new();
        let kp = signed::signing_keypair(&self.tsk, &p, at(T0 - 3600), None).expect("keypair");
        signed::sign(body, kp, at(T0 - 3600)).expect("sign")
    }

    pub fn sign(&self, st: &Statement) -> Vec<u8> {
        self.sign_raw(st.to_body().as_bytes())
    }
}

/// The cast: alpha is a root, beta trusted at depth 1, mallory refused,
/// eve in the keyring but untrusted, stranger not in the keyring at all.
pub struct World {
    pub alpha: Key,
    pub beta: Key,
    pub mallory: Key,
    pub eve: Key,
    pub stranger: Key,
    pub view: StaticTrust,
}

impl World {
    pub fn new() -> World {
        let alpha = Key::new("Alpha Postmaster <postmaster@alpha.example>");
        let beta = Key::new("beta.example");
        let mallory = Key::new("<hostmaster@mallory.example>");
        let eve = Key::new("Eve <eve@eve.example>");
        let stranger = Key::new("<x@stranger.example>");
        let mut view = StaticTrust::new(vec![
            alpha.public(),
            beta.public(),
            mallory.public(),
            eve.public(),
        ]);
        view.set(
            alpha.fpr(),
            SignerTrust::Trusted {
                depth: 0,
                domains: vec!["alpha.example".into()],
            },
        );
        view.set(
            beta.fpr(),
            SignerTrust::Trusted {
                depth: 1,
                domains: vec!["beta.example".into()],
            },
        );
        view.set(
            mallory.fpr(),
            SignerTrust::Refused {
                would_be_domains: vec!["mallory.example".into()],
            },
        );
        World {
            alpha,
            beta,
            mallory,
            eve,
            stranger,
            view,
        }
    }

    pub fn judge_with(
        &self,
        rules: &AcceptRules,
        state: &SerialState,
        t: u64,
        file: &str,
        bytes: &[u8],
    ) -> Judgement {
        let p = StandardPolicy::new();
        Acceptor {
            rules,
            trust: &self.view,
            policy: &p,
            at: at(t),
            state,
        }
        .judge(file, bytes)
    }

    pub fn judge(&self, file: &str, bytes: &[u8]) -> Judgement {
        self.judge_with(&test_rules(), &SerialState::default(), T0, file, bytes)
    }
}

/// Judges `bytes` at T0 against a keyring of `certs` in which nobody is trusted.
pub fn judge_against(certs: Vec<Cert>, file: &str, bytes: &[u8]) -> Judgement {
    let p = StandardPolicy::new();
    Acceptor {
        rules: &test_rules(),
        trust: &StaticTrust::new(certs),
        policy: &p,
        at: at(T0),
        state: &SerialState::default(),
    }
    .judge(file, bytes)
}

/// The default rules plus documentation prefixes (tests use 2001:db8::/32).
pub fn test_rules() -> AcceptRules {
    AcceptRules {
        allow_documentation_prefixes: true,
        ..Default::default()
    }
}

pub fn statement(domain: &str, serial: u64, prefixes: &[&str]) -> Statement {
    Statement {
        domain: domain.into(),
        serial,
        not_before: T0 - DAY,
        not_after: T0 + 30 * DAY,
        mode: Mode::Enforce,
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        tls_key_sha256: vec![],
    }
}

/// `issuer` certifies every User ID of `target` (a day after creation);
/// returns `target`'s public certificate with the certifications.
pub fn certify(issuer: &Key, target: &Key) -> Cert {
    certify_only(issuer, target, |_| true)
}

/// `issuer` certifies the User IDs of `target` that `which` picks.
pub fn certify_only(issuer: &Key, target: &Key, which: impl Fn(&str) -> bool) -> Cert {
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::types::SignatureType;
    let mut signer = issuer.signer();
    let sigs: Vec<openpgp::Packet> = target
        .tsk
        .userids()
        .filter(|u| which(&String::from_utf8_lossy(u.userid().value())))
        .map(|u| {
            SignatureBuilder::new(SignatureType::GenericCertification)
                .set_signature_creation_time(at(T0 - 364 * DAY))
                .unwrap()
                .sign_userid_binding(&mut signer, target.tsk.primary_key().key(), u.userid())
                .unwrap()
                .into()
        })
        .collect();
    target.public().insert_packets(sigs).unwrap().0
}

/// Writes certificates as one binary keyring file.
pub fn write_keyring(path: &std::path::Path, certs: &[Cert]) {
    use openpgp::serialize::Serialize;
    let mut f = std::fs::File::create(path).unwrap();
    for c in certs {
        c.serialize(&mut f).unwrap();
    }
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wotgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
