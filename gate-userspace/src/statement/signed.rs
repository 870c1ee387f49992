//! The OpenPGP envelope: opening an armoured inline-signed statement (strict
//! framing, one signature) and judging its signature; signing is in `sign`.

use std::fmt;
use std::io::Read;
use std::time::SystemTime;

use openpgp::{
    cert::Cert,
    packet::Tag,
    parse::{
        stream::{
            MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
        },
        PacketParser, Parse,
    },
    policy::Policy,
    Fingerprint, KeyHandle, KeyID,
};
use sequoia_openpgp as openpgp;

use super::body::MAX_BODY_BYTES;
pub use super::sign::{sign, signing_keypair, SignError, Unusable};
use crate::model::time::format_time;

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

/// The packets of a statement, in order.
const SHAPE: [Tag; 3] = [Tag::OnePassSig, Tag::Literal, Tag::Signature];
const SHAPE_TEXT: &str =
    "a statement is exactly a one-pass signature, a literal data packet and a signature";

/// Checks that packet number `index` (from 0) of a statement is a `tag`
/// the statement may have there.
fn check_packet(index: usize, tag: Tag) -> Result<(), EnvelopeError> {
    match tag {
        Tag::PKESK | Tag::SKESK | Tag::SEIP | Tag::SED | Tag::AED | Tag::MDC => {
            Err(EnvelopeError::Encrypted)
        }
        Tag::CompressedData => Err(EnvelopeError::Compressed),
        _ if SHAPE.get(index) == Some(&tag) => Ok(()),
        Tag::OnePassSig | Tag::Signature if index < SHAPE.len() => Err(EnvelopeError::Framing(
            format!("more than one signature, or a signature before the data; {SHAPE_TEXT}"),
        )),
        _ if index >= SHAPE.len() => Err(EnvelopeError::Framing(format!(
            "trailing data inside the armour: a {tag} after the signature; {SHAPE_TEXT}"
        ))),
        _ => Err(EnvelopeError::Framing(format!(
            "packet {} is a {tag} where a {} belongs; {SHAPE_TEXT}",
            index + 1,
            SHAPE[index]
        ))),
    }
}

const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const END: &[u8] = b"-----END PGP MESSAGE-----";

/// Checks the armour strictly, since the armour reader skips what it does
/// not understand (text before the header line, junk header lines, anything
/// after the footer, a second armoured block): the `BEGIN` line first, an
/// empty line (no armour headers: they are not signed), base64 lines, an
/// optional `=XXXX` checksum line, the `END` line, then only spaces, tabs,
/// CR and LF. Lines end with LF or CRLF; spaces and tabs before the line end
/// are ignored.
fn check_armour(armoured: &[u8]) -> Result<(), EnvelopeError> {
    let framing = |m: String| Err(EnvelopeError::Framing(m));
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut lines = armoured
        .split_inclusive(|&b| b == b'\n')
        .map(|l| {
            let end = l.iter().rposition(|b| !is_space(b)).map_or(0, |i| i + 1);
            (&l[..end], l.len())
        })
        .enumerate()
        .map(|(i, (l, len))| (i + 1, l, len));
    let mut offset = 0;
    let mut next = || {
        let line = lines.next();
        if let Some((_, _, len)) = line {
            offset += len;
        }
        line.map(|(n, l, _)| (n, l))
    };
    if next().map(|(_, l)| l) != Some(BEGIN) {
        return framing(
            "does not start with a -----BEGIN PGP MESSAGE----- line (statements are armoured inline-signed messages, with nothing before the armour)".into(),
        );
    }
    match next() {
        Some((_, [])) => {}
        Some((n, l)) if l.windows(2).any(|w| w == b": ") => {
            return framing(format!(
                "armour line {n} is an armour header ({:?}); statements carry none (they are not signed)",
                String::from_utf8_lossy(l)
            ))
        }
        _ => return framing("the line after -----BEGIN PGP MESSAGE----- must be empty".into()),
    }
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
    // After padding only the checksum or END may follow; after the checksum
    // only END.
    let (mut padded, mut summed) = (false, false);
    loop {
        let Some((n, line)) = next() else {
            return framing("truncated: no -----END PGP MESSAGE----- line".into());
        };
        if line == END {
            break;
        }
        if line.starts_with(b"-----END") {
            return framing(format!(
                "armour line {n} is not exactly -----END PGP MESSAGE----- (nothing may follow it on its line)"
            ));
        }
        let data = line
            .strip_prefix(b"=")
            .filter(|c| c.len() == 4)
            .unwrap_or(line);
        let checksum = data.len() != line.len();
        let unpadded = data.len() - data.iter().rev().take_while(|&&b| b == b'=').count();
        if summed
            || (padded && !checksum)
            || data.is_empty()
            || !data[..unpadded].iter().all(base64)
            || data.len() - unpadded > 2
        {
            return framing(format!(
                "armour line {n} is not base64 data, a checksum or the -----END PGP MESSAGE----- line"
            ));
        }
        padded |= unpadded < data.len();
        summed |= checksum;
    }
    let rest = &armoured[offset..];
    if let Some(i) = rest.iter().position(|b| !is_space(b)) {
        let junk = &rest[i..];
        return framing(format!(
            "{} bytes of trailing data after the -----END PGP MESSAGE----- line, starting \"{}\"; only whitespace may follow the armour",
            junk.len(),
            junk[..junk.len().min(24)].escape_ascii()
        ));
    }
    Ok(())
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

/// An error and its causes on one line, each said once (a cause the text
/// before already contains is left out), times in RFC 3339.
pub(super) fn reason(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    readable(text)
}

/// `text` with any `SystemTime { tv_sec: S, tv_nsec: N }` (Debug output
/// in some sequoia errors) written as RFC 3339.
fn readable(text: String) -> String {
    const OPEN: &str = "SystemTime { tv_sec: ";
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len()..];
        let secs_len = after
            .find(|c: char| c != '-' && !c.is_ascii_digit())
            .unwrap_or(after.len());
        let close = after.find('}');
        match (after[..secs_len].parse::<i64>(), close) {
            (Ok(secs), Some(j)) => {
                out.push_str(&rest[..i]);
                out.push_str(&rfc3339_signed(secs));
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str(&rest[..i + OPEN.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Seconds since 1970 (possibly negative) as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_signed(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(t) => crate::model::time::format_rfc3339(t),
        Err(_) => chrono::DateTime::from_timestamp(secs, 0).map_or_else(
            || format!("{secs} s since 1970"),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed armour around `data` lines, with `tail` after the END line.
    fn armour(lines: &[&str], tail: &str) -> Vec<u8> {
        let mut s = String::from("-----BEGIN PGP MESSAGE-----\n\n");
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("-----END PGP MESSAGE-----\n");
        s.push_str(tail);
        s.into_bytes()
    }

    #[test]
    fn armour_framing_is_strict() {
        let ok = |b: &[u8]| check_armour(b).is_ok();
        assert!(ok(&armour(&["owGbwMvMwCF2", "AB=="], "")));
        assert!(ok(&armour(&["owGbwMvMwCF2", "AB==", "=Fkix"], "\n \t\r\n")));
        assert!(ok(&armour(&["owGbwMvMwCF2", "=Fkix"], "")));
        assert!(ok(&armour(&["owGbwMvMwCF2  \r"], "")));
        // Data after padding or the checksum, a blank line, junk, a bad checksum.
        assert!(!ok(&armour(&["AB==", "owGbwMvMwCF2"], "")));
        assert!(!ok(&armour(&["owGb", "=Fkix", "owGb"], "")));
        assert!(!ok(&armour(&["owGb", "", "owGb"], "")));
        assert!(!ok(&armour(&["owGb-", "owGb"], "")));
        assert!(!ok(&armour(&["owGb", "=Fki"], "")));
        assert!(!ok(&armour(&["AB==="], "")));
        // Anything but whitespace after the END line.
        assert!(!ok(&armour(&["owGb"], "x")));
        assert!(!ok(&armour(&["owGb"], "\n\0")));
        let e = check_armour(&armour(&["owGb"], "\nserial: 9\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "10 bytes of trailing data after the -----END PGP MESSAGE----- line, starting \"serial: 9\\n\"; only whitespace may follow the armour"
        );
        // Nothing before the BEGIN line, no headers, no missing END line.
        assert!(!ok(&[b" ".as_slice(), &armour(&["owGb"], "")].concat()));
        assert!(!ok(
            b"-----BEGIN PGP MESSAGE-----\nComment: x\n\nowGb\n-----END PGP MESSAGE-----\n"
        ));
        assert!(!ok(
            b"-----BEGIN PGP MESSAGE-----\nowGb\n-----END PGP MESSAGE-----\n"
        ));
        assert!(!ok(b"-----BEGIN PGP MESSAGE-----\n\nowGb\n"));
        assert!(!ok(b""));
    }

    #[test]
    fn system_time_debug_output_becomes_rfc3339() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let text = format!(
            "Signature (created {:?}) predates key ({:?})",
            t(1_795_600_800),
            t(1_795_600_801)
        );
        assert_eq!(
            readable(text),
            "Signature (created 2026-11-25T10:00:00Z) predates key (2026-11-25T10:00:01Z)"
        );
        let before = format!(
            "{:?}",
            SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(1)
        );
        assert_eq!(readable(before), "1969-12-31T23:59:59Z");
        assert_eq!(
            readable("SystemTime { tv_sec: x }".into()),
            "SystemTime { tv_sec: x }"
        );
    }

    #[test]
    fn causes_are_said_once() {
        let e = anyhow::Error::from(std::io::Error::other("disk full")).context("disk full");
        assert_eq!(reason(&e), "disk full");
        let e = anyhow::Error::from(openpgp::Error::Expired(SystemTime::UNIX_EPOCH))
            .context("signing key is not alive");
        assert_eq!(
            reason(&e),
            "signing key is not alive: Expired on 1970-01-01T00:00:00Z"
        );
    }
}
