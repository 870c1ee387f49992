//! A participant's certificate from its Web Key Directory: the URLs
//! (sequoia-net's `wkd::Url`), the fetch with our fallback rule, and the filter
//! that keeps only certificates with a User ID for the queried address.
//!
//! Fallback (docs/sources.md): the advanced method first; the direct method
//! only when the advanced host could not be reached at all (connection or
//! name resolution failed) or failed TLS (wildcard DNS or certificates). An
//! HTTP answer from the advanced host, a 404 included, is final, as in GnuPG.

use sequoia_net::wkd::{Url as WkdUrl, Variant};
use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::Serialize;
use sequoia_openpgp::Fingerprint;

use super::https::{Budget, FetchError, FetchErrorKind, Fetched, Fetcher};
use super::wellknown::Domain;
use crate::wot::userid_email_domain;

/// Both WKD URLs of an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WkdUrls {
    pub advanced: String,
    pub direct: String,
}

/// The advanced and direct URLs for `address` (local part lower-cased for
/// the hash, sent as it is in `?l=`).
pub fn urls(address: &str) -> Result<WkdUrls, String> {
    let u = WkdUrl::from(address).map_err(|e| format!("{address:?}: not a WKD address: {e}"))?;
    Ok(WkdUrls {
        advanced: u.build(Variant::Advanced),
        direct: u.build(Variant::Direct),
    })
}

/// Whether a failure of the advanced method lets the direct one be tried.
pub fn falls_back(kind: &FetchErrorKind) -> bool {
    matches!(kind, FetchErrorKind::Connect(_) | FetchErrorKind::Tls(_))
}

/// Fetches the WKD answer for `postmaster@DOMAIN` (body capped at
/// `max_response_bytes` and taken from `budget`). When both methods fail,
/// the direct method's error is returned.
pub async fn fetch(
    fetcher: &Fetcher,
    domain: &Domain,
    budget: &Budget,
) -> Result<Fetched, FetchError> {
    let urls = urls(&domain.wkd_address()).map_err(|e| FetchError {
        url: domain.to_string(),
        kind: FetchErrorKind::BadUrl(e),
    })?;
    match fetcher.get_within(&urls.advanced, budget).await {
        Err(e) if falls_back(&e.kind) => {
            tracing::debug!("{e}; trying the direct WKD method");
            fetcher.get_within(&urls.direct, budget).await
        }
        other => other,
    }
}

/// The certificates of a WKD answer that are for the queried domain.
#[derive(Debug, Default)]
pub struct Filtered {
    pub certs: Vec<Cert>,
    /// One line per certificate dropped (or unreadable part), naming the origin.
    pub dropped: Vec<String>,
}

impl Filtered {
    /// The kept certificates, binary, concatenated (a keyring).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.certs {
            // Serialising a parsed certificate into memory does not fail.
            let _ = c.serialize(&mut out);
        }
        out
    }

    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.certs.iter().map(Cert::fingerprint).collect()
    }
}

/// Parses a WKD answer (binary or armoured, possibly several certificates)
/// and keeps the certificates with a User ID whose address is
/// `postmaster@DOMAIN` or which is the bare domain. Secret key material is
/// stripped. An error when nothing usable remains.
pub fn filter(origin: &str, domain: &Domain, body: &[u8]) -> Result<Filtered, String> {
    let address = domain.wkd_address();
    let parser = CertParser::from_bytes(body)
        .map_err(|e| format!("{origin}: not an OpenPGP certificate: {e}"))?;
    let mut out = Filtered::default();
    for item in parser {
        match item {
            Ok(cert) => {
                let for_us = cert.userids().any(|u| {
                    let text = String::from_utf8_lossy(u.userid().value()).to_string();
                    match userid_email_domain(&text) {
                        (Some(email), _) => email == address,
                        (None, Some(d)) => d == domain.as_str(),
                        (None, None) => false,
                    }
                });
                if for_us {
                    out.certs.push(cert.strip_secret_key_material());
                } else {
                    out.dropped.push(format!(
                        "{origin}: certificate {} has no User ID for {address} or {domain}; dropped",
                        cert.fingerprint()
                    ));
                }
            }
            Err(e) => out.dropped.push(format!(
                "{origin}: unreadable data after {} certificate(s): {e}",
                out.certs.len()
            )),
        }
    }
    if out.certs.is_empty() {
        let why = if out.dropped.is_empty() {
            "no certificate".to_string()
        } else {
            out.dropped.join("; ")
        };
        return Err(format!("{origin}: no certificate for {address}: {why}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(url: &str) -> &str {
        let path = url.split('?').next().unwrap();
        path.rsplit('/').next().unwrap()
    }

    #[test]
    fn draft_vectors() {
        let u = urls("joe.doe@example.org").unwrap();
        assert_eq!(hash_of(&u.advanced), "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
        let u = urls("juga@example.org").unwrap();
        assert_eq!(hash_of(&u.direct), "7t1uqk9cwh1955776rc4z1gqf388566j");
    }

    #[test]
    fn the_local_part_is_lower_cased_for_the_hash_only() {
        let u = urls("Joe.Doe@example.org").unwrap();
        assert_eq!(hash_of(&u.advanced), "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
        assert_ne!(hash_of(&u.advanced), "pcgzakauf7ubbkqhq39ifojo7wji1m59");
        assert!(u.advanced.ends_with("?l=Joe.Doe"), "{}", u.advanced);
    }

    #[test]
    fn both_url_forms() {
        let u = urls("postmaster@alpha.example").unwrap();
        let h = hash_of(&u.advanced).to_string();
        assert_eq!(
            u.advanced,
            format!("https://openpgpkey.alpha.example/.well-known/openpgpkey/alpha.example/hu/{h}?l=postmaster")
        );
        assert_eq!(
            u.direct,
            format!("https://alpha.example/.well-known/openpgpkey/hu/{h}?l=postmaster")
        );
        assert!(urls("not an address").is_err());
    }

    #[test]
    fn fallback_only_when_the_advanced_host_is_unreachable() {
        assert!(falls_back(&FetchErrorKind::Connect("refused".into())));
        assert!(falls_back(&FetchErrorKind::Tls("UnknownIssuer".into())));
        assert!(!falls_back(&FetchErrorKind::Status(404)));
        assert!(!falls_back(&FetchErrorKind::Status(500)));
        assert!(!falls_back(&FetchErrorKind::TooLarge { limit: 1 }));
        assert!(!falls_back(&FetchErrorKind::Timeout(
            std::time::Duration::from_secs(1)
        )));
    }

    fn cert(userids: &[&str]) -> Cert {
        let mut b = CertBuilder::new();
        for u in userids {
            b = b.add_userid(*u);
        }
        b.generate().unwrap().0
    }

    fn bytes(certs: &[&Cert]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in certs {
            c.serialize(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn keeps_only_certificates_for_the_queried_address() {
        let d = Domain::parse("alpha.example").unwrap();
        let ours = cert(&["Postmaster <postmaster@Alpha.Example>"]);
        let bare = cert(&["alpha.example"]);
        let other_local = cert(&["<hostmaster@alpha.example>"]);
        let other_domain = cert(&["<postmaster@beta.example>"]);
        let f = filter(
            "U",
            &d,
            &bytes(&[&ours, &bare, &other_local, &other_domain]),
        )
        .unwrap();
        assert_eq!(
            f.fingerprints(),
            vec![ours.fingerprint(), bare.fingerprint()]
        );
        assert_eq!(f.dropped.len(), 2, "{:?}", f.dropped);
        assert!(f.dropped[1].contains(&other_domain.fingerprint().to_string()));
        let again = filter("U", &d, &f.to_bytes()).unwrap();
        assert_eq!(again.fingerprints(), f.fingerprints());
    }

    #[test]
    fn another_domains_key_alone_is_an_error() {
        let d = Domain::parse("alpha.example").unwrap();
        let e = filter("U", &d, &bytes(&[&cert(&["<postmaster@beta.example>"])])).unwrap_err();
        assert!(
            e.contains("no certificate for postmaster@alpha.example"),
            "{e}"
        );
        assert!(e.contains("dropped"), "{e}");
        assert!(filter("U", &d, b"garbage").is_err());
        assert!(filter("U", &d, b"").is_err());
    }
}
