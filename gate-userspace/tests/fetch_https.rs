//! The HTTPS client against an in-process server on 127.0.0.1: limits,
//! redirects, TLS trust and the errors that name the URL and the reason.

mod fetch_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fetch_support::{test_limits, Reply, Server, TestCa};
use wotgate::source::https::{FetchErrorKind, USER_AGENT};
use wotgate::source::settings::FetchLimits;

const URL: &str = "https://alpha.example/.well-known/wotgate/statement.asc";
const PATH: &str = "/.well-known/wotgate/statement.asc";

async fn server(ca: &TestCa) -> Server {
    Server::start(ca, &["alpha.example", "openpgpkey.alpha.example"]).await
}

#[tokio::test]
async fn fetches_a_body_from_a_pinned_host_with_port_443_urls() {
    let ca = TestCa::new("ok");
    let s = server(&ca).await;
    s.route("alpha.example", PATH, Reply::Body(b"hello".to_vec()));
    let f = s.fetcher(test_limits(), &ca.pem());
    let got = f.get(&format!("{URL}?x=1")).await.unwrap();
    assert_eq!(got.bytes, b"hello");
    assert_eq!(got.url, format!("{URL}?x=1"));
    assert_eq!(got.final_url, format!("{URL}?x=1"));
    assert_eq!(s.requests(), vec![format!("alpha.example{PATH}?x=1")]);
    assert!(USER_AGENT.starts_with("wotgate/"));
}

#[tokio::test]
async fn a_body_at_the_cap_is_read_one_byte_more_is_refused() {
    let ca = TestCa::new("cap");
    let s = server(&ca).await;
    s.route("alpha.example", "/exact", Reply::Body(vec![7; 1000]));
    s.route("alpha.example", "/over", Reply::Body(vec![7; 1001]));
    let f = s.fetcher(test_limits(), &ca.pem());
    assert_eq!(
        f.get_capped("https://alpha.example/exact", 1000)
            .await
            .unwrap()
            .bytes
            .len(),
        1000
    );
    let e = f
        .get_capped("https://alpha.example/over", 1000)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::TooLarge { limit: 1000 });
    assert!(
        e.to_string().starts_with("https://alpha.example/over: "),
        "{e}"
    );
}

#[tokio::test]
async fn a_10_gb_body_is_cut_at_the_cap_without_reading_it() {
    let ca = TestCa::new("10gb");
    let s = server(&ca).await;
    // No Content-Length: the client can only find out by streaming.
    s.route(
        "alpha.example",
        "/zeros",
        Reply::Zeros {
            len: 10 << 30,
            announce: false,
        },
    );
    // Announced: refused before the body is read at all.
    s.route(
        "alpha.example",
        "/announced",
        Reply::Zeros {
            len: 10 << 30,
            announce: true,
        },
    );
    let f = s.fetcher(test_limits(), &ca.pem());
    let start = Instant::now();
    let e = f.get("https://alpha.example/zeros").await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::TooLarge { limit: 1 << 20 });
    let e = f.get("https://alpha.example/announced").await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::TooLarge { limit: 1 << 20 });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Let the server notice the closed connections, then check it was not
    // able to push more than buffers hold past the 1 MiB cap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = s.sent.load(Ordering::Relaxed);
    assert!(sent < 64 << 20, "server sent {sent} bytes");
}

#[tokio::test]
async fn a_redirect_loop_stops_at_max_redirects() {
    let ca = TestCa::new("loop");
    let s = server(&ca).await;
    s.route("alpha.example", "/a", Reply::Redirect("/b".into()));
    s.route(
        "alpha.example",
        "/b",
        Reply::Redirect("https://alpha.example/a".into()),
    );
    let f = s.fetcher(test_limits(), &ca.pem());
    let e = f.get("https://alpha.example/a").await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::TooManyRedirects(3));
    assert_eq!(e.url, "https://alpha.example/a");
    assert_eq!(s.requests().len(), 4, "{:?}", s.requests());
}

#[tokio::test]
async fn redirects_are_followed_within_the_bound() {
    let ca = TestCa::new("hops");
    let s = server(&ca).await;
    s.route(
        "alpha.example",
        "/old",
        Reply::Redirect("https://openpgpkey.alpha.example/new".into()),
    );
    s.route(
        "openpgpkey.alpha.example",
        "/new",
        Reply::Body(b"moved".to_vec()),
    );
    let f = s.fetcher(test_limits(), &ca.pem());
    let got = f.get("https://alpha.example/old").await.unwrap();
    assert_eq!(got.bytes, b"moved");
    assert_eq!(got.final_url, "https://openpgpkey.alpha.example/new");
}

#[tokio::test]
async fn a_redirect_to_http_is_refused() {
    let ca = TestCa::new("http");
    let s = server(&ca).await;
    s.route(
        "alpha.example",
        "/a",
        Reply::Redirect("http://alpha.example/plain".into()),
    );
    let f = s.fetcher(test_limits(), &ca.pem());
    let e = f.get("https://alpha.example/a").await.unwrap_err();
    assert_eq!(
        e.kind,
        FetchErrorKind::RedirectToHttp("http://alpha.example/plain".into())
    );
    assert_eq!(s.requests().len(), 1);
    let e = f.get("http://alpha.example/a").await.unwrap_err();
    assert!(matches!(e.kind, FetchErrorKind::BadUrl(_)), "{e}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_a_tls_error() {
    let ours = TestCa::new("ours");
    let theirs = TestCa::new("theirs");
    let s = server(&theirs).await;
    s.route("alpha.example", PATH, Reply::Body(b"x".to_vec()));
    let f = s.fetcher(test_limits(), &ours.pem());
    let e = f.get(URL).await.unwrap_err();
    assert!(matches!(e.kind, FetchErrorKind::Tls(_)), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn a_name_the_certificate_does_not_cover_is_a_tls_error() {
    let ca = TestCa::new("name");
    let s = Server::start(&ca, &["alpha.example"]).await;
    let f = wotgate::source::https::Fetcher::builder(test_limits())
        .system_roots(false)
        .extra_ca_pem(ca.pem().as_bytes())
        .pin("beta.example", s.addr)
        .build()
        .unwrap();
    let e = f.get("https://beta.example/x").await.unwrap_err();
    assert!(matches!(e.kind, FetchErrorKind::Tls(_)), "{e}");
}

#[tokio::test]
async fn a_server_that_hangs_times_out() {
    let ca = TestCa::new("hang");
    let s = server(&ca).await;
    s.route("alpha.example", "/hang", Reply::Hang);
    let limits = FetchLimits {
        timeout: Duration::from_millis(500),
        ..test_limits()
    };
    let f = s.fetcher(limits, &ca.pem());
    let start = Instant::now();
    let e = f.get("https://alpha.example/hang").await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::Timeout(Duration::from_millis(500)));
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[tokio::test]
async fn garbage_instead_of_http_and_error_statuses_are_errors() {
    let ca = TestCa::new("garbage");
    let s = server(&ca).await;
    s.route(
        "alpha.example",
        "/garbage",
        Reply::Raw(b"\x00\xffNOT HTTP AT ALL\r\n\r\n".to_vec()),
    );
    s.route("alpha.example", "/error", Reply::Status(500));
    let f = s.fetcher(test_limits(), &ca.pem());
    let e = f.get("https://alpha.example/garbage").await.unwrap_err();
    assert!(matches!(e.kind, FetchErrorKind::Http(_)), "{e}");
    let e = f.get("https://alpha.example/error").await.unwrap_err();
    assert_eq!(e.kind, FetchErrorKind::Status(500));
    let e = f.get("https://alpha.example/missing").await.unwrap_err();
    assert!(e.kind.is_absent());
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error() {
    let ca = TestCa::new("closed");
    // Bind and drop: the port is (very likely) closed afterwards.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = wotgate::source::https::Fetcher::builder(test_limits())
        .system_roots(false)
        .extra_ca_pem(ca.pem().as_bytes())
        .pin("alpha.example", addr)
        .build()
        .unwrap();
    let e = f.get(URL).await.unwrap_err();
    assert!(matches!(e.kind, FetchErrorKind::Connect(_)), "{e}");
}
