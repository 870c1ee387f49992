//! Opening a statement: verifying its one signature against the keyrings
//! ([`open`]) or reading its body unchecked ([`peek`]).

use std::io::Read;
use std::time::SystemTime;

use openpgp::{
    cert::Cert,
    parse::{
        stream::{
            MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
        },
        PacketParser, Parse,
    },
    policy::Policy,
    Fingerprint, KeyHandle,
};
use sequoia_openpgp as openpgp;

use super::framing::{check_armour, check_packet};
use super::text::{readable, reason};
use super::{CertLookup, EnvelopeError, KeyOwner, Opened};
use crate::statement::body::MAX_BODY_BYTES;

struct Helper<'a> {
    certs: &'a dyn CertLookup,
    policy: &'a dyn Policy,
    at: SystemTime,
    /// Packets seen so far.
    packets: usize,
    outcome: &'a mut Option<Result<(Fingerprint, SystemTime), EnvelopeError>>,
}

impl VerificationHelper for Helper<'_> {
    /// Every packet, in order, before the verifier acts on it: anything but
    /// the three packets of a statement stops the verifier there (so an
    /// encrypted or compressed container is never opened).
    fn inspect(&mut self, pp: &PacketParser) -> openpgp::Result<()> {
        if let Err(e) = check_packet(self.packets, pp.packet.tag()) {
            *self.outcome = Some(Err(e));
            return Err(anyhow::anyhow!("statement structure rejected"));
        }
        self.packets += 1;
        Ok(())
    }

    fn get_certs(&mut self, ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        let mut out: Vec<Cert> = Vec::new();
        for id in ids {
            for c in self.certs.certs_for(id) {
                if !out.iter().any(|o| o.fingerprint() == c.fingerprint()) {
                    out.push(c.clone());
                }
            }
        }
        Ok(out)
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let result = judge_structure(structure, self.policy, self.at);
        let failed = result.is_err();
        *self.outcome = Some(result);
        if failed {
            return Err(anyhow::anyhow!("statement signature rejected"));
        }
        Ok(())
    }
}

/// Exactly one signature layer holding exactly one good signature; no
/// encryption, no compression.
fn judge_structure(
    structure: MessageStructure,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<(Fingerprint, SystemTime), EnvelopeError> {
    let mut found = None;
    for layer in structure.into_iter() {
        match layer {
            MessageLayer::Compression { .. } => return Err(EnvelopeError::Compressed),
            MessageLayer::Encryption { .. } => return Err(EnvelopeError::Encrypted),
            MessageLayer::SignatureGroup { results } => {
                if found.is_some() || results.len() != 1 {
                    return Err(EnvelopeError::SignatureCount(
                        results.len() + usize::from(found.is_some()),
                    ));
                }
                found = Some(match results.into_iter().next() {
                    Some(Ok(good)) => Ok((
                        good.ka.cert().fingerprint(),
                        good.sig
                            .signature_creation_time()
                            .unwrap_or(SystemTime::UNIX_EPOCH),
                    )),
                    Some(Err(e)) => Err(verification_error(e, policy, at)),
                    None => Err(EnvelopeError::SignatureCount(0)),
                });
            }
        }
    }
    found.unwrap_or(Err(EnvelopeError::NotSigned))
}

/// What a failed verification means, naming the signing key's certificate
/// and a User ID whenever a keyring holds the key.
fn verification_error(e: VerificationError, policy: &dyn Policy, at: SystemTime) -> EnvelopeError {
    let owner = |cert: &Cert, key: Fingerprint| Box::new(KeyOwner::new(cert, key, policy, at));
    match e {
        VerificationError::MissingKey { sig } => {
            EnvelopeError::UnknownSigner(sig.get_issuers().into_iter().next())
        }
        VerificationError::BadSignature { sig, ka, error } => {
            let signer = owner(ka.cert(), ka.key().fingerprint());
            let cause = error
                .chain()
                .find_map(|c| c.downcast_ref::<openpgp::Error>());
            match cause {
                Some(violation @ openpgp::Error::PolicyViolation(..)) => {
                    EnvelopeError::PolicyRejected {
                        signer,
                        reason: violation.to_string(),
                    }
                }
                Some(openpgp::Error::NotYetLive(_)) => EnvelopeError::MadeAfter {
                    signer,
                    signed_at: sig
                        .signature_creation_time()
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    at,
                },
                Some(openpgp::Error::Expired(t)) => EnvelopeError::SignatureExpired {
                    signer,
                    expired: *t,
                },
                _ => EnvelopeError::BadSignature {
                    signer: Some(signer),
                    reason: reason(&error),
                },
            }
        }
        VerificationError::BadKey { ka, error, .. } => EnvelopeError::BadKey {
            owner: owner(ka.cert(), ka.key().fingerprint()),
            reason: reason(&error),
        },
        VerificationError::UnboundKey { sig, cert, error } => {
            // The key of `cert` the verifier matched against the issuers.
            let key = cert
                .keys()
                .key_handles(sig.get_issuers())
                .next()
                .map_or_else(|| cert.fingerprint(), |k| k.key().fingerprint());
            EnvelopeError::UnboundKey {
                owner: owner(cert, key),
                reason: reason(&error),
            }
        }
        other => EnvelopeError::BadSignature {
            signer: None,
            reason: readable(other.to_string()),
        },
    }
}

/// Verifies an armoured inline-signed statement under `policy` at `at` and
/// returns its body. The caller bounds `armoured`'s size beforehand.
pub fn open(
    armoured: &[u8],
    certs: &dyn CertLookup,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<Opened, EnvelopeError> {
    check_armour(armoured)?;
    let mut outcome = None;
    // The verifier holds the whole message (so the signature is checked
    // before any byte is handed out) up to this bound.
    let built = VerifierBuilder::from_bytes(armoured).and_then(|b| {
        b.buffer_size(2 * MAX_BODY_BYTES).with_policy(
            policy,
            Some(at),
            Helper {
                certs,
                policy,
                at,
                packets: 0,
                outcome: &mut outcome,
            },
        )
    });
    let mut body = Vec::new();
    let read = built.and_then(|mut v| {
        (&mut v)
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body)?;
        if !v.message_processed() {
            return Err(anyhow::anyhow!("trailing data after the statement"));
        }
        Ok(())
    });
    match (read, outcome) {
        (_, Some(Err(e))) => Err(e),
        (Err(e), _) => Err(EnvelopeError::Malformed(reason(&e))),
        (Ok(()), Some(Ok((signer, signed_at)))) => Ok(Opened {
            body,
            signer,
            signed_at,
        }),
        (Ok(()), None) => Err(EnvelopeError::NeverChecked),
    }
}

/// Reads the body and the issuers of an armoured statement without checking
/// the signature (for `statement show`); the armour and the packets must
/// have a statement's shape.
pub fn peek(armoured: &[u8]) -> Result<(Vec<u8>, Vec<String>), EnvelopeError> {
    check_armour(armoured)?;
    let malformed = |e: anyhow::Error| EnvelopeError::Malformed(reason(&e));
    let mut issuers = Vec::new();
    let mut body = Vec::new();
    let mut ppr = PacketParser::from_bytes(armoured).map_err(malformed)?;
    let mut index = 0;
    while let openpgp::parse::PacketParserResult::Some(mut pp) = ppr {
        check_packet(index, pp.packet.tag())?;
        index += 1;
        match &pp.packet {
            openpgp::Packet::Literal(_) => {
                (&mut pp)
                    .take(MAX_BODY_BYTES as u64 + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| malformed(e.into()))?;
            }
            openpgp::Packet::OnePassSig(ops) => issuers.push(ops.issuer().to_hex()),
            _ => {}
        }
        ppr = pp.recurse().map_err(malformed)?.1;
    }
    Ok((body, issuers))
}
