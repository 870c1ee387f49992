//! The strict shape of a statement: its armour checked line by line, and
//! its packets (one-pass signature, literal data, signature) in order.

use openpgp::packet::Tag;
use sequoia_openpgp as openpgp;

use super::EnvelopeError;

/// The packets of a statement, in order.
const SHAPE: [Tag; 3] = [Tag::OnePassSig, Tag::Literal, Tag::Signature];
const SHAPE_TEXT: &str =
    "a statement is exactly a one-pass signature, a literal data packet and a signature";

/// Checks that packet number `index` (from 0) of a statement is a `tag`
/// the statement may have there.
pub(super) fn check_packet(index: usize, tag: Tag) -> Result<(), EnvelopeError> {
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
pub(super) fn check_armour(armoured: &[u8]) -> Result<(), EnvelopeError> {
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
}
