//! The crawl against an in-process server on 127.0.0.1 answering for
//! root.example, a.example and b.example: depth, bounds, the cache, floods.
//!
//! ```text
//!   root ──certifies──► A ──certifies──► B
//!   (local keyring)     (in root's       (only in A's
//!                        certified.pgp)   certified.pgp)
//! ```

mod fetch_support;
mod statement_fixtures;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fetch_support::{test_limits, Reply, Server, TestCa};
use sequoia_openpgp::packet::Packet;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::Serialize;
use sequoia_openpgp::Cert;
use statement_fixtures::{at, certify, statement, temp_dir, Key, T0};
use wotgate::model::settings::TrustSettings;
use wotgate::source::crawl::{Crawled, Crawler, Outcome};
use wotgate::source::settings::{CrawlBounds, SourcesSettings};
use wotgate::source::wellknown::SourceKind;
use wotgate::source::{wkd, Gathered, Named};

const STATEMENT: &str = "/.well-known/wotgate/statement.asc";
const CERTIFIED: &str = "/.well-known/wotgate/certified.pgp";

fn bytes(certs: &[Cert]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in certs {
        c.serialize(&mut out).unwrap();
    }
    out
}

fn wkd_direct_path(domain: &str) -> String {
    let u = wkd::urls(&format!("postmaster@{domain}")).unwrap().direct;
    let p = u.strip_prefix(&format!("https://{domain}")).unwrap();
    p.split('?').next().unwrap().to_string()
}

/// The three participants, their server, and a state directory.
struct World {
    root: Key,
    a: Key,
    b: Key,
    ca: TestCa,
    server: Server,
    state: PathBuf,
}

impl World {
    async fn new(name: &str) -> World {
        let root = Key::new("<postmaster@root.example>");
        let a = Key::new("<postmaster@a.example>");
        let b = Key::new("<postmaster@b.example>");
        let ca = TestCa::new(name);
        // No openpgpkey.* hosts: WKD falls back to the direct method (the
        // test client refuses unpinned hosts, as if they did not resolve).
        let server = Server::start(&ca, &["root.example", "a.example", "b.example"]).await;
        for (domain, key) in [
            ("root.example", &root),
            ("a.example", &a),
            ("b.example", &b),
        ] {
            server.route(
                domain,
                &wkd_direct_path(domain),
                Reply::Body(bytes(&[key.public()])),
            );
        }
        let st = |d: &str, k: &Key| Reply::Body(k.sign(&statement(d, 1, &["2001:db8:1::/48"])));
        server.route("a.example", STATEMENT, st("a.example", &a));
        server.route("b.example", STATEMENT, st("b.example", &b));
        server.route(
            "root.example",
            CERTIFIED,
            Reply::Body(bytes(&[certify(&root, &a)])),
        );
        server.route(
            "a.example",
            CERTIFIED,
            Reply::Body(bytes(&[certify(&a, &b)])),
        );
        World {
            root,
            a,
            b,
            ca,
            server,
            state: temp_dir(name),
        }
    }

    fn local(&self) -> Gathered {
        Gathered {
            keyrings: vec![Named {
                origin: "local:root.pgp".into(),
                bytes: bytes(&[self.root.public()]),
            }],
            ..Gathered::default()
        }
    }

    fn trust(&self, depth: usize) -> TrustSettings {
        let mut t = TrustSettings::new([self.root.fpr()], at(T0));
        t.depth = depth;
        t
    }

    fn crawler(&self, settings: &SourcesSettings) -> Crawler {
        Crawler::with_fetcher(
            self.server.fetcher(settings.fetch.clone(), &self.ca.pem()),
            settings,
            &self.state,
        )
    }

    async fn crawl(&self, settings: &SourcesSettings, depth: usize) -> Crawled {
        let p = StandardPolicy::new();
        self.crawler(settings)
            .gather(self.local(), &self.trust(depth), &p)
            .await
    }

    fn requested(&self, host_path: &str) -> bool {
        self.server
            .requests()
            .iter()
            .any(|r| r.starts_with(host_path))
    }
}

fn settings() -> SourcesSettings {
    SourcesSettings {
        fetch: test_limits(),
        ..SourcesSettings::default()
    }
}

fn statement_origins(c: &Crawled) -> Vec<String> {
    c.gathered
        .statements
        .iter()
        .map(|n| n.origin.clone())
        .collect()
}

fn outcome(c: &Crawled, domain: &str, kind: SourceKind) -> Option<Outcome> {
    c.sources
        .iter()
        .find(|s| s.domain.as_str() == domain && s.kind == kind)
        .map(|s| s.outcome.clone())
}

#[tokio::test]
async fn b_is_found_through_as_certifications_at_depth_2() {
    let w = World::new("crawl-depth2").await;
    let c = w.crawl(&settings(), 2).await;
    assert!(c.gathered.problems.is_empty(), "{:?}", c.gathered.problems);
    assert_eq!(
        statement_origins(&c),
        vec![
            "https://a.example/.well-known/wotgate/statement.asc",
            "https://b.example/.well-known/wotgate/statement.asc"
        ]
    );
    assert!(w.requested(&format!("a.example{CERTIFIED}")));
    // B is at depth 2 = N: it cannot introduce, so its certifications are not fetched.
    assert!(!w.requested(&format!("b.example{CERTIFIED}")));
    assert_eq!(
        outcome(&c, "root.example", SourceKind::Statement),
        Some(Outcome::Absent)
    );
    assert_eq!(
        outcome(&c, "b.example", SourceKind::Wkd),
        Some(Outcome::Fetched)
    );
    assert_eq!(c.rounds, 3, "root, then A, then B");
    // Every fetched input is named by its URL.
    assert!(c.gathered.keyrings[1..]
        .iter()
        .all(|n| n.origin.starts_with("https://")));
    // The engine, given what was gathered, trusts B at depth 2.
    let (ring, _) = wotgate::wot::Keyring::parse(&c.gathered.keyrings);
    let report = wotgate::wot::evaluate(&ring, &w.trust(2), &StandardPolicy::new());
    assert_eq!(
        report.key(&w.b.fpr()).unwrap().status,
        wotgate::wot::KeyStatus::Trusted { depth: 2 }
    );
    assert!(report.key(&w.a.fpr()).unwrap().introducer);
}

#[tokio::test]
async fn a_crawl_with_the_persistent_cache_verifies_nothing_twice() {
    let w = World::new("crawl-verified").await;
    let p = StandardPolicy::new();
    let mut cache = wotgate::wot::VerifyCache::new();
    let first = w
        .crawler(&settings())
        .gather_cached(w.local(), &w.trust(2), &p, &mut cache)
        .await;
    let verified = cache.len();
    assert!(
        verified > 0,
        "the rounds' judgements verified certifications"
    );
    let again = w
        .crawler(&settings())
        .gather_cached(w.local(), &w.trust(2), &p, &mut cache)
        .await;
    assert_eq!(cache.len(), verified, "nothing verified a second time");
    assert_eq!(statement_origins(&again), statement_origins(&first));
    assert_eq!(again.rounds, first.rounds);
}

#[tokio::test]
async fn b_is_not_fetched_at_depth_1() {
    let w = World::new("crawl-depth1").await;
    let c = w.crawl(&settings(), 1).await;
    assert!(c.gathered.problems.is_empty(), "{:?}", c.gathered.problems);
    assert_eq!(
        statement_origins(&c),
        vec!["https://a.example/.well-known/wotgate/statement.asc"]
    );
    assert!(
        !w.requested(&format!("a.example{CERTIFIED}")),
        "{:?}",
        w.server.requests()
    );
    assert!(!w.requested("b.example"), "{:?}", w.server.requests());
}

#[tokio::test]
async fn configured_participants_are_fetched_even_before_they_are_trusted() {
    let w = World::new("crawl-participants").await;
    let s = SourcesSettings {
        participants: vec!["B.example".into(), "not a domain".into()],
        crawl: CrawlBounds {
            enabled: false,
            ..CrawlBounds::default()
        },
        ..settings()
    };
    let c = w.crawl(&s, 2).await;
    // Crawling is off: no published certifications, so A is never known;
    // B's own sources are fetched because it is configured.
    assert!(!w.requested(&format!("root.example{CERTIFIED}")));
    assert_eq!(
        statement_origins(&c),
        vec!["https://b.example/.well-known/wotgate/statement.asc"]
    );
    assert_eq!(c.gathered.problems.len(), 1, "{:?}", c.gathered.problems);
    assert!(c.gathered.problems[0].contains("\"not a domain\""));
}

#[tokio::test]
async fn a_failing_source_keeps_its_last_good_copy_and_a_404_forgets_it() {
    let w = World::new("crawl-cache").await;
    let first = w.crawl(&settings(), 2).await;
    assert!(first.gathered.problems.is_empty());
    assert!(w.state.join("cache/a.example/statement").is_file());

    w.server.route("a.example", STATEMENT, Reply::Status(503));
    let c = w.crawl(&settings(), 2).await;
    assert!(c.gathered.problems.is_empty(), "{:?}", c.gathered.problems);
    assert_eq!(statement_origins(&c), statement_origins(&first));
    let note = c
        .notes
        .iter()
        .find(|n| n.contains("a.example/.well-known/wotgate/statement.asc: HTTP status 503"))
        .unwrap_or_else(|| panic!("{:?}", c.notes));
    assert!(note.contains("using the copy fetched at"), "{note}");
    assert!(matches!(
        outcome(&c, "a.example", SourceKind::Statement),
        Some(Outcome::Stale { .. })
    ));

    // A garbage certified.pgp is a failure too: the last good copy is used.
    w.server.route(
        "a.example",
        CERTIFIED,
        Reply::Body(b"<html>oops</html>".to_vec()),
    );
    let c = w.crawl(&settings(), 2).await;
    assert!(c.gathered.problems.is_empty(), "{:?}", c.gathered.problems);
    assert!(statement_origins(&c)
        .iter()
        .any(|o| o.contains("b.example")));

    // Withdrawn: 404 forgets the copy, the statement is gone.
    w.server.route("a.example", STATEMENT, Reply::Status(404));
    let c = w.crawl(&settings(), 2).await;
    assert_eq!(
        outcome(&c, "a.example", SourceKind::Statement),
        Some(Outcome::Absent)
    );
    assert!(!statement_origins(&c)
        .iter()
        .any(|o| o.contains("a.example")));
    assert!(!w.state.join("cache/a.example/statement").exists());

    // Never fetched and failing: a problem naming the URL and the reason.
    let fresh = World::new("crawl-cache-fresh").await;
    fresh
        .server
        .route("a.example", STATEMENT, Reply::Status(500));
    let c = fresh.crawl(&settings(), 2).await;
    assert_eq!(
        c.gathered.problems,
        vec!["https://a.example/.well-known/wotgate/statement.asc: HTTP status 500 (no earlier copy to use)"]
    );
}

#[tokio::test]
async fn the_participant_bound_stops_the_crawl() {
    let w = World::new("crawl-participants-bound").await;
    let s = SourcesSettings {
        crawl: CrawlBounds {
            max_participants: 2,
            ..CrawlBounds::default()
        },
        ..settings()
    };
    let c = w.crawl(&s, 2).await;
    assert!(!w.requested("b.example"));
    assert_eq!(c.gathered.problems.len(), 1, "{:?}", c.gathered.problems);
    assert!(c.gathered.problems[0].starts_with("b.example: not fetched: more than 2 participants"));
    assert_eq!(
        outcome(&c, "b.example", SourceKind::Wkd),
        Some(Outcome::Skipped)
    );
}

#[tokio::test]
async fn the_time_bound_stops_a_hanging_crawl() {
    let w = World::new("crawl-time").await;
    w.server.route("a.example", CERTIFIED, Reply::Hang);
    let s = SourcesSettings {
        crawl: CrawlBounds {
            max_time: Duration::from_millis(800),
            ..CrawlBounds::default()
        },
        ..settings()
    };
    let start = Instant::now();
    let c = w.crawl(&s, 2).await;
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(
        c.gathered
            .problems
            .iter()
            .any(|p| p.contains("certified.pgp: not fetched: the refresh's time bound")),
        "{:?}",
        c.gathered.problems
    );
}

/// A's certified.pgp: B's certificate followed by 100,000 copies of A's
/// certification of B's User ID (about 15 MB).
fn flood(w: &World) -> Vec<u8> {
    let certified = certify(&w.a, &w.b);
    let sig: Packet = certified
        .userids()
        .next()
        .unwrap()
        .certifications()
        .next()
        .unwrap()
        .clone()
        .into();
    let mut one = Vec::new();
    sig.serialize(&mut one).unwrap();
    let mut out = bytes(&[w.b.public()]);
    for _ in 0..100_000 {
        out.extend_from_slice(&one);
    }
    out
}

#[tokio::test]
async fn a_participant_publishing_100000_certifications_is_bounded() {
    let w = World::new("crawl-flood").await;
    let body = flood(&w);
    assert!(body.len() > 10 << 20, "{}", body.len());
    w.server.route("a.example", CERTIFIED, Reply::Body(body));

    // The response cap (1 MiB by default) cuts it.
    let start = Instant::now();
    let c = w.crawl(&settings(), 2).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        c.gathered.problems,
        vec![format!(
            "https://a.example{CERTIFIED}: response body larger than 1048576 bytes; cut there and not used (no earlier copy to use)"
        )]
    );
    assert!(!w.requested("b.example"));
    // A's own sources are still used.
    assert_eq!(
        statement_origins(&c),
        vec!["https://a.example/.well-known/wotgate/statement.asc"]
    );

    // A larger response cap, but the refresh's byte budget cuts it.
    let mut s = settings();
    s.fetch.max_response_bytes = 64 << 20;
    s.crawl.max_total_bytes = 4 << 20;
    let c = w.crawl(&s, 2).await;
    let p = c
        .sources
        .iter()
        .find(|r| r.domain.as_str() == "a.example" && r.kind == SourceKind::Certified)
        .unwrap();
    match &p.outcome {
        Outcome::Failed { error } => assert!(error.contains("byte budget"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(c.bytes <= 4 << 20, "{}", c.bytes);

    // Caps raised so that all of it is read: parsing folds the copies and
    // the engine's flooding limits bound what it verifies; B is found.
    let mut s = settings();
    s.fetch.max_response_bytes = 64 << 20;
    let start = Instant::now();
    let c = w.crawl(&s, 2).await;
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    assert!(c.gathered.problems.is_empty(), "{:?}", c.gathered.problems);
    assert!(statement_origins(&c)
        .iter()
        .any(|o| o.contains("b.example")));
}

#[test]
fn the_crawl_can_run_on_a_spawned_task() {
    fn send<T: Send>(_: &T) {}
    let state = temp_dir("crawl-send");
    let ca = TestCa::new("send");
    let f = wotgate::source::https::Fetcher::builder(test_limits())
        .system_roots(false)
        .extra_ca_pem(ca.pem().as_bytes())
        .pinned_only()
        .build()
        .unwrap();
    let crawler = Crawler::with_fetcher(f, &settings(), &state);
    let p = StandardPolicy::new();
    let t = TrustSettings::new([], at(T0));
    let fut = crawler.gather(Gathered::default(), &t, &p);
    send(&fut);
}
