//! The OpenPGP envelope: opening an armoured inline-signed statement (strict
//! framing, one signature) and judging its signature; signing is in `sign`.

use std::fmt;
use std::time::SystemTime;

use openpgp::{cert::Cert, policy::Policy, Fingerprint, KeyHandle, KeyID};
use sequoia_openpgp as openpgp;

pub use super::sign::{sign, signing_keypair, SignError, Unusable};
use crate::model::time::format_time;

mod framing;
mod text;
mod verify;

pub(super) use text::reason;
pub use verify::{open, peek};

/// Why a signed statement could not be opened (before its body is read).
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an armoured OpenPGP signed message, or truncated: {0}")]
    Malformed(String),
    /// Bytes outside the armour, or a packet besides the one-pass signature,
    /// the literal data and the signature.
    #[error("{0}")]
    Framing(String),
    /// No certificate in the keyrings has the key the signature names
    /// (`None`: the signature names no key).
    #[error("signed by an unknown key: {}", unknown_key(.0.as_ref()))]
    UnknownSigner(Option<KeyHandle>),
    /// The signature does not verify (the body or the signature was
    /// altered, or another key made it); `signer` is `None` when the
    /// signature could not even be read.
    #[error("bad signature by {}: it does not verify (forged or altered): {reason}", signer_text(.signer.as_deref()))]
    BadSignature {
        signer: Option<Box<KeyOwner>>,
        reason: String,
    },
    /// The signature verifies, but the policy rejects what it is made with
    /// (a weak hash such as SHA-1, a weak algorithm).
    #[error("signature by {signer} is rejected by the standard policy (not a forgery, but not accepted): {reason}")]
    PolicyRejected {
        signer: Box<KeyOwner>,
        reason: String,
    },
    /// The signature was made after the reference time.
    #[error("signature by {signer} was made at {}, after the reference time {}", format_time(*.signed_at), format_time(*.at))]
    MadeAfter {
        signer: Box<KeyOwner>,
        signed_at: SystemTime,
        at: SystemTime,
    },
    /// The signature carries an expiration time before the reference time.
    #[error("signature by {signer} expired at {}", format_time(*.expired))]
    SignatureExpired {
        signer: Box<KeyOwner>,
        expired: SystemTime,
    },
    /// The signing key was revoked, expired or not signing-capable then.
    #[error("signing key {} of {owner} was not valid when it signed: {reason}", owner.key_id())]
    BadKey {
        owner: Box<KeyOwner>,
        reason: String,
    },
    /// The signing key is in a certificate that does not validly bind it
    /// (under the policy, when it signed).
    #[error("signing key {} appears in certificate {owner} but is not validly bound to it when it signed: {reason}", owner.key_id())]
    UnboundKey {
        owner: Box<KeyOwner>,
        reason: String,
    },
    #[error("statement is compressed; it must be a plain signed literal")]
    Compressed,
    #[error("statement is encrypted; it must only be signed")]
    Encrypted,
    /// Not exactly one signature (the count found).
    #[error("a statement carries exactly one signature, this one has {0}")]
    SignatureCount(usize),
    #[error("not signed")]
    NotSigned,
    /// The verifier ended without judging the signature.
    #[error("the signature was never checked")]
    NeverChecked,
}

/// A signing key and the certificate a keyring holds it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// The signing key (the primary key or a subkey).
    pub key: Fingerprint,
    /// The certificate (its primary key's fingerprint).
    pub cert: Fingerprint,
    /// The certificate's primary User ID at the reference time, else its
    /// first User ID.
    pub userid: Option<String>,
}

impl KeyOwner {
    /// The owner of `key` in `cert`, with the User ID valid under `policy` at `at`.
    fn new(cert: &Cert, key: Fingerprint, policy: &dyn Policy, at: SystemTime) -> KeyOwner {
        let primary = cert
            .with_policy(policy, at)
            .and_then(|vc| vc.primary_userid().map(|u| u.userid().clone()))
            .ok();
        let userid = primary
            .or_else(|| cert.userids().next().map(|u| u.userid().clone()))
            .map(|u| String::from_utf8_lossy(u.value()).into_owned());
        KeyOwner {
            key,
            cert: cert.fingerprint(),
            userid,
        }
    }

    /// The signing key's Key ID as `0x...`.
    pub fn key_id(&self) -> String {
        format!("0x{}", KeyID::from(&self.key).to_hex())
    }
}

/// `FINGERPRINT (User ID)` of the certificate.
impl fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.userid {
            Some(u) => write!(f, "{} ({u})", self.cert.to_hex()),
            None => write!(f, "{} (no User ID)", self.cert.to_hex()),
        }
    }
}

/// Why a key is unknown, in words: which key no certificate has, and what to do.
fn unknown_key(issuer: Option<&KeyHandle>) -> String {
    let key = match issuer {
        None => return "the signature names no issuer key".into(),
        Some(KeyHandle::KeyID(id)) => format!("0x{}", id.to_hex()),
        Some(KeyHandle::Fingerprint(f)) => {
            format!("0x{} (fingerprint {})", KeyID::from(f).to_hex(), f.to_hex())
        }
    };
    format!(
        "no certificate in the keyrings has key {key}; if it is a new subkey, refresh the signer's certificate in the keyring"
    )
}

/// The signer of a bad signature, or `unknown`.
fn signer_text(signer: Option<&KeyOwner>) -> String {
    signer.map_or_else(|| "unknown".into(), KeyOwner::to_string)
}

/// A statement whose signature checked out (trust is judged elsewhere).
#[derive(Debug, Clone)]
pub struct Opened {
    pub body: Vec<u8>,
    /// The signer's certificate (primary key) fingerprint.
    pub signer: Fingerprint,
    pub signed_at: SystemTime,
}

/// Where a verification helper finds certificates by issuer.
pub trait CertLookup {
    fn certs_for(&self, issuer: &KeyHandle) -> Vec<&Cert>;
}
