//! WKD against an in-process server on 127.0.0.1: the advanced method, the
//! fallback rule, and the filter that drops another domain's key.

mod fetch_support;

use fetch_support::{test_limits, Reply, Server, TestCa};
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::serialize::Serialize;
use sequoia_openpgp::Cert;
use wotgate::source::https::{Budget, FetchErrorKind, Fetcher};
use wotgate::source::wellknown::Domain;
use wotgate::source::wkd;

fn cert(uid: &str) -> Cert {
    CertBuilder::new().add_userid(uid).generate().unwrap().0
}

fn bytes(certs: &[&Cert]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in certs {
        c.serialize(&mut out).unwrap();
    }
    out
}

fn paths(d: &Domain) -> (String, String) {
    let u = wkd::urls(&d.wkd_address()).unwrap();
    let strip = |s: &str, host: &str| {
        s.strip_prefix(&format!("https://{host}"))
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string()
    };
    (
        strip(&u.advanced, &format!("openpgpkey.{d}")),
        strip(&u.direct, d.as_str()),
    )
}

#[tokio::test]
async fn the_advanced_method_answers() {
    let ca = TestCa::new("wkd-adv");
    let s = Server::start(&ca, &["alpha.example", "openpgpkey.alpha.example"]).await;
    let d = Domain::parse("alpha.example").unwrap();
    let ours = cert("<postmaster@alpha.example>");
    let (adv, _) = paths(&d);
    s.route(
        "openpgpkey.alpha.example",
        &adv,
        Reply::Body(bytes(&[&ours])),
    );
    let got = wkd::fetch(
        &s.fetcher(test_limits(), &ca.pem()),
        &d,
        &Budget::unlimited(),
    )
    .await
    .unwrap();
    assert!(got
        .url
        .starts_with("https://openpgpkey.alpha.example/.well-known/openpgpkey/alpha.example/hu/"));
    assert!(got.url.ends_with("?l=postmaster"));
    let f = wkd::filter(&got.url, &d, &got.bytes).unwrap();
    assert_eq!(f.fingerprints(), vec![ours.fingerprint()]);
}

#[tokio::test]
async fn falls_back_to_direct_when_the_advanced_host_fails_tls() {
    let ca = TestCa::new("wkd-direct");
    // The certificate does not cover openpgpkey.alpha.example (as with a
    // wildcard DNS record pointing at the web server).
    let s = Server::start(&ca, &["alpha.example"]).await;
    let d = Domain::parse("alpha.example").unwrap();
    let ours = cert("<postmaster@alpha.example>");
    let (_, direct) = paths(&d);
    s.route("alpha.example", &direct, Reply::Body(bytes(&[&ours])));
    let f = Fetcher::builder(test_limits())
        .system_roots(false)
        .extra_ca_pem(ca.pem().as_bytes())
        .pinned_only()
        .pin("alpha.example", s.addr)
        .pin("openpgpkey.alpha.example", s.addr)
        .build()
        .unwrap();
    let got = wkd::fetch(&f, &d, &Budget::unlimited()).await.unwrap();
    assert!(
        got.url
            .starts_with("https://alpha.example/.well-known/openpgpkey/hu/"),
        "{}",
        got.url
    );
}

#[tokio::test]
async fn falls_back_to_direct_when_the_advanced_host_is_unreachable() {
    let ca = TestCa::new("wkd-unreach");
    let s = Server::start(&ca, &["alpha.example"]).await;
    let d = Domain::parse("alpha.example").unwrap();
    let (_, direct) = paths(&d);
    s.route(
        "alpha.example",
        &direct,
        Reply::Body(bytes(&[&cert("alpha.example")])),
    );
    // openpgpkey.alpha.example is not pinned: the test client refuses it
    // like a name that does not resolve.
    let got = wkd::fetch(
        &s.fetcher(test_limits(), &ca.pem()),
        &d,
        &Budget::unlimited(),
    )
    .await
    .unwrap();
    assert!(got.url.starts_with("https://alpha.example/"), "{}", got.url);
}

#[tokio::test]
async fn a_404_from_the_advanced_host_is_final() {
    let ca = TestCa::new("wkd-404");
    let s = Server::start(&ca, &["alpha.example", "openpgpkey.alpha.example"]).await;
    let d = Domain::parse("alpha.example").unwrap();
    let (_, direct) = paths(&d);
    s.route(
        "alpha.example",
        &direct,
        Reply::Body(bytes(&[&cert("alpha.example")])),
    );
    let e = wkd::fetch(
        &s.fetcher(test_limits(), &ca.pem()),
        &d,
        &Budget::unlimited(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::Status(404));
    assert!(e.url.starts_with("https://openpgpkey.alpha.example/"));
    assert_eq!(s.requests().len(), 1, "{:?}", s.requests());
}

#[tokio::test]
async fn a_wkd_answer_with_another_domains_key_is_dropped_and_reported() {
    let ca = TestCa::new("wkd-other");
    let s = Server::start(&ca, &["alpha.example", "openpgpkey.alpha.example"]).await;
    let d = Domain::parse("alpha.example").unwrap();
    let theirs = cert("<postmaster@beta.example>");
    let (adv, _) = paths(&d);
    s.route(
        "openpgpkey.alpha.example",
        &adv,
        Reply::Body(bytes(&[&theirs])),
    );
    let got = wkd::fetch(
        &s.fetcher(test_limits(), &ca.pem()),
        &d,
        &Budget::unlimited(),
    )
    .await
    .unwrap();
    let e = wkd::filter(&got.url, &d, &got.bytes).unwrap_err();
    assert!(e.contains(&theirs.fingerprint().to_string()), "{e}");
    assert!(
        e.contains("no certificate for postmaster@alpha.example"),
        "{e}"
    );
    assert!(e.starts_with(&got.url), "{e}");
}

#[tokio::test]
async fn a_garbage_wkd_answer_is_reported() {
    let ca = TestCa::new("wkd-garbage");
    let s = Server::start(&ca, &["alpha.example", "openpgpkey.alpha.example"]).await;
    let d = Domain::parse("alpha.example").unwrap();
    let (adv, _) = paths(&d);
    s.route(
        "openpgpkey.alpha.example",
        &adv,
        Reply::Body(b"<html>not a key</html>".to_vec()),
    );
    let got = wkd::fetch(
        &s.fetcher(test_limits(), &ca.pem()),
        &d,
        &Budget::unlimited(),
    )
    .await
    .unwrap();
    let e = wkd::filter(&got.url, &d, &got.bytes).unwrap_err();
    assert!(e.starts_with("https://openpgpkey.alpha.example/"), "{e}");
}
