//! The plan digest: SHA-256 over the kernel set's canonical text, so two
//! hosts enforcing the same set show the same digest, whenever it was built.

use sha2::{Digest, Sha256};

use crate::model::prefixes::{PrefixSet, MAX_LABEL};

/// `sha256:` and 64 hex digits over the set's canonical text: one line per
/// entry in prefix order, `verdict prefix label` (the label cut as the kernel
/// keeps it), each ending in a newline. No build time, no comments.
pub fn digest(set: &PrefixSet) -> String {
    let mut h = Sha256::new();
    for e in set.iter() {
        let mut n = e.label.len().min(MAX_LABEL);
        while !e.label.is_char_boundary(n) {
            n -= 1;
        }
        h.update(format!("{} {} {}\n", e.verdict, e.prefix, &e.label[..n]).as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(t: &str) -> PrefixSet {
        PrefixSet::parse(t, "t").unwrap()
    }

    #[test]
    fn same_set_same_digest_whatever_the_order_or_comments() {
        let a = set("allow 2001:db8:a::/48 alpha\ndeny 2001:db8:a:bad::/64 mallory\n");
        let b = set(
            "# another build\ndeny 2001:db8:a:bad::/64 mallory\n\nallow 2001:db8:a::/48 alpha\n",
        );
        assert_eq!(digest(&a), digest(&b));
        assert!(digest(&a).starts_with("sha256:") && digest(&a).len() == 7 + 64);
        // Verdict, prefix and label all count.
        for other in [
            "allow 2001:db8:a::/48 alpha\nallow 2001:db8:a:bad::/64 mallory\n",
            "allow 2001:db8:a::/48 alpha\ndeny 2001:db8:a:bad::/65 mallory\n",
            "allow 2001:db8:a::/48 alpha2\ndeny 2001:db8:a:bad::/64 mallory\n",
        ] {
            assert_ne!(digest(&a), digest(&set(other)), "{other}");
        }
        // The empty set has the digest of no bytes.
        assert_eq!(
            digest(&PrefixSet::new()),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // A known vector: one line.
        let one = set("allow 2001:db8::/32 x\n");
        let expect: String = Sha256::digest(b"allow 2001:db8::/32 x\n")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest(&one), format!("sha256:{expect}"));
    }
}
