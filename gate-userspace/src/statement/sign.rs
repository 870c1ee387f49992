//! Signing a statement body into an armoured inline-signed message: the only
//! code in wotgate that touches secret key material (`wotgate statement sign`).

use std::io::Write;
use std::time::SystemTime;

use openpgp::{
    armor,
    cert::{amalgamation::ValidAmalgamation, Cert},
    crypto::Password,
    packet::{key, Key},
    policy::Policy,
    serialize::stream::{Armorer, LiteralWriter, Message, Signer},
    types::RevocationStatus,
    Fingerprint,
};
use sequoia_openpgp as openpgp;

use super::signed::reason;
use crate::model::time::format_time;

/// Errors of `sign`, the one path that handles secret key material.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The certificate has no valid binding at the signing time (it did not
    /// exist yet, or the policy rejects its self-signatures).
    #[error("certificate {cert} is not valid at {}: {reason}", format_time(*.at))]
    NotValid {
        cert: Fingerprint,
        at: SystemTime,
        reason: String,
    },
    /// The certificate holds no secret key that may sign at `at`, and why.
    #[error("certificate {cert} cannot sign at {}: {why}", format_time(*.at))]
    CannotSign {
        cert: Fingerprint,
        at: SystemTime,
        why: Unusable,
    },
    /// The signing key is encrypted and no password was given.
    #[error("secret key {0} is password-protected")]
    PasswordNeeded(Fingerprint),
    #[error("wrong password for secret key {0}")]
    WrongPassword(Fingerprint),
    /// The secret key material cannot be used for signing.
    #[error("{0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Why a certificate cannot sign, as it is.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("the certificate is revoked")]
    CertRevoked,
    #[error("the certificate expired at {}", format_time(*.0))]
    CertExpired(SystemTime),
    #[error("the certificate is not alive: {0}")]
    CertNotAlive(String),
    #[error("it has no signing-capable key (add a signing subkey)")]
    NoSigningKey,
    /// The Key IDs of the signing keys whose secret the file lacks.
    #[error("the key file holds no secret key material for its signing key(s) {}", .0.join(", "))]
    NoSecret(Vec<String>),
    /// Why each signing key with secret material cannot sign.
    #[error("{}", .0.join("; "))]
    Keys(Vec<String>),
}

/// Why `vc` has no secret signing key that is alive and not revoked.
fn why_unusable(vc: &openpgp::cert::ValidCert, at: SystemTime) -> Unusable {
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Unusable::CertRevoked;
    }
    if let Err(e) = vc.alive() {
        return match vc.primary_key().key_expiration_time() {
            Some(t) if t <= at => Unusable::CertExpired(t),
            _ => Unusable::CertNotAlive(reason(&e)),
        };
    }
    let signing: Vec<_> = vc.keys().for_signing().collect();
    if signing.is_empty() {
        return Unusable::NoSigningKey;
    }
    let with_secret: Vec<_> = signing.iter().filter(|k| k.key().has_secret()).collect();
    if with_secret.is_empty() {
        return Unusable::NoSecret(
            signing
                .iter()
                .map(|k| format!("0x{}", k.key().keyid().to_hex()))
                .collect(),
        );
    }
    Unusable::Keys(
        with_secret
            .iter()
            .map(|k| {
                let id = format!("0x{}", k.key().keyid().to_hex());
                if let RevocationStatus::Revoked(_) = k.revocation_status() {
                    return format!("signing key {id} is revoked");
                }
                match (k.alive(), k.key_expiration_time()) {
                    (Err(_), Some(t)) if t <= at => {
                        format!("signing key {id} expired at {}", format_time(t))
                    }
                    (Err(e), _) => format!("signing key {id} is not alive: {}", reason(&e)),
                    (Ok(()), _) => format!("signing key {id} cannot sign"),
                }
            })
            .collect(),
    )
}

/// Picks the secret signing key of `tsk` valid under `policy` at `at`,
/// decrypting it with `password` if it is protected.
pub fn signing_keypair(
    tsk: &Cert,
    policy: &dyn Policy,
    at: SystemTime,
    password: Option<&Password>,
) -> Result<openpgp::crypto::KeyPair, SignError> {
    let fpr = tsk.fingerprint();
    let vc = tsk
        .with_policy(policy, at)
        .map_err(|e| SignError::NotValid {
            cert: fpr.clone(),
            at,
            reason: reason(&e),
        })?;
    let ka = vc
        .keys()
        .secret()
        .alive()
        .revoked(false)
        .for_signing()
        .next()
        .ok_or_else(|| SignError::CannotSign {
            cert: fpr.clone(),
            at,
            why: why_unusable(&vc, at),
        })?;
    let key: Key<key::SecretParts, key::UnspecifiedRole> = ka.key().clone();
    let key = if key.has_unencrypted_secret() {
        key
    } else {
        let kf = key.fingerprint();
        let pw = password.ok_or_else(|| SignError::PasswordNeeded(kf.clone()))?;
        key.decrypt_secret(pw)
            .map_err(|_| SignError::WrongPassword(kf))?
    };
    key.into_keypair().map_err(|e| SignError::Key(reason(&e)))
}

/// Signs `body` into an armoured inline-signed message (binary literal data),
/// with the signature created at `at`.
pub fn sign(
    body: &[u8],
    keypair: openpgp::crypto::KeyPair,
    at: SystemTime,
) -> Result<Vec<u8>, SignError> {
    let run = || -> openpgp::Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let message = Message::new(&mut out);
            let message = Armorer::new(message).kind(armor::Kind::Message).build()?;
            let message = Signer::new(message, keypair)?.creation_time(at).build()?;
            let mut literal = LiteralWriter::new(message).build()?;
            literal.write_all(body)?;
            literal.finalize()?;
        }
        Ok(out)
    };
    run().map_err(|e| SignError::Sign(reason(&e)))
}
