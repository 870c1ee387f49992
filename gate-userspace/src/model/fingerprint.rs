//! OpenPGP fingerprints as operators write them (hex, any case, spaces
//! allowed): parsed here once, into sequoia's type, everywhere.

use sequoia_openpgp::Fingerprint;

/// A fingerprint that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a v4 (40 hex digits) or v6 (64 hex digits) fingerprint")]
pub struct FingerprintError {
    pub input: String,
}

/// Parses a v4 or v6 fingerprint; whitespace is ignored, case is not significant.
pub fn parse_fingerprint(s: &str) -> Result<Fingerprint, FingerprintError> {
    let hex: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let ok = (hex.len() == 40 || hex.len() == 64) && hex.bytes().all(|c| c.is_ascii_hexdigit());
    let bad = || FingerprintError {
        input: s.to_string(),
    };
    if !ok {
        return Err(bad());
    }
    Fingerprint::from_hex(&hex).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_v6_spaces_case() {
        let v4 = "0123456789ABCDEF0123456789ABCDEF01234567";
        let f = parse_fingerprint(&v4.to_lowercase()).unwrap();
        assert_eq!(f.to_hex(), v4);
        assert_eq!(
            parse_fingerprint("0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567").unwrap(),
            f
        );
        let v6 = "AB".repeat(32);
        assert_eq!(parse_fingerprint(&v6).unwrap().to_hex(), v6);
        for bad in ["", "abc", &"G".repeat(40), &"A".repeat(41), &"A".repeat(16)] {
            assert_eq!(parse_fingerprint(bad).unwrap_err().input, bad);
        }
    }
}
