//! The HTTPS client for fetched sources: rustls (ring) over the system's trust
//! store plus an optional extra CA, with every limit of [`FetchLimits`] enforced.
//!
//! Redirects are followed here, not by reqwest, so that each hop is checked
//! (never to plain HTTP, at most `max_redirects`) and named in errors. Bodies
//! are read chunk by chunk and cut at the cap: a larger body is never read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::settings::{FetchLimits, SourcesSettings};

/// The User-Agent every request carries.
pub const USER_AGENT: &str = concat!("wotgate/", env!("CARGO_PKG_VERSION"));

/// Largest extra CA file read (PEM).
const MAX_CA_FILE: usize = 4 << 20;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: cannot read the extra CA file: {error}")]
    CaFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {problem}")]
    CaContent { path: PathBuf, problem: String },
    #[error("no trusted CA certificate: the system store is empty or unreadable and no extra CA file is configured")]
    NoRoots,
    #[error("cannot build the HTTPS client: {0}")]
    Build(String),
}

/// A fetch that failed; `url` is the URL asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {kind}")]
pub struct FetchError {
    pub url: String,
    pub kind: FetchErrorKind,
}

/// What went wrong, in variants a daemon can count ([`FetchErrorKind::label`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchErrorKind {
    #[error("not a valid https URL: {0}")]
    BadUrl(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("response body larger than {limit} bytes; cut there and not used")]
    TooLarge { limit: u64 },
    /// The refresh's byte budget (`max_total_bytes`) ran out during this fetch.
    #[error("the refresh's byte budget of {limit} bytes (crawl.max_total_bytes) ran out while reading; not used")]
    BudgetExhausted { limit: u64 },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("redirect to plain http refused ({0})")]
    RedirectToHttp(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    #[error("{0}")]
    Http(String),
    /// Not attempted: a bound of the refresh (time) was reached first.
    #[error("not fetched: {0}")]
    NotAttempted(&'static str),
}

impl FetchErrorKind {
    /// A short stable name, for metrics labels and counting.
    pub fn label(&self) -> &'static str {
        match self {
            FetchErrorKind::BadUrl(_) => "bad_url",
            FetchErrorKind::Timeout(_) => "timeout",
            FetchErrorKind::TooLarge { .. } => "too_large",
            FetchErrorKind::BudgetExhausted { .. } => "budget",
            FetchErrorKind::Tls(_) => "tls",
            FetchErrorKind::Connect(_) => "connect",
            FetchErrorKind::Status(_) => "status",
            FetchErrorKind::RedirectToHttp(_) => "redirect_to_http",
            FetchErrorKind::TooManyRedirects(_) => "too_many_redirects",
            FetchErrorKind::BadRedirect(_) => "bad_redirect",
            FetchErrorKind::Http(_) => "http",
            FetchErrorKind::NotAttempted(_) => "not_attempted",
        }
    }

    /// The server answered that there is nothing there (404 or 410).
    pub fn is_absent(&self) -> bool {
        matches!(self, FetchErrorKind::Status(404 | 410))
    }
}

/// A successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The URL asked for.
    pub url: String,
    /// The URL that answered (after redirects).
    pub final_url: String,
    pub bytes: Vec<u8>,
}

/// Body bytes that the fetches of one refresh may read together
/// (`CrawlBounds::max_total_bytes`). Bytes are taken as they arrive, so
/// concurrent fetches share it without reserving their whole cap.
#[derive(Debug)]
pub struct Budget {
    left: AtomicU64,
    total: u64,
}

impl Budget {
    pub fn new(total: u64) -> Budget {
        Budget {
            left: AtomicU64::new(total),
            total,
        }
    }

    pub fn unlimited() -> Budget {
        Budget::new(u64::MAX)
    }

    /// Takes `n` bytes; false (taking nothing) when fewer are left.
    pub fn take(&self, n: u64) -> bool {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    pub fn left(&self) -> u64 {
        self.left.load(Ordering::SeqCst)
    }

    pub fn is_spent(&self) -> bool {
        self.left() == 0
    }
}

/// How to build a [`Fetcher`].
#[derive(Clone, Debug)]
pub struct FetcherBuilder {
    limits: FetchLimits,
    system_roots: bool,
    extra_ca_file: Option<PathBuf>,
    extra_ca_pem: Vec<u8>,
    pins: Vec<(String, SocketAddr)>,
    pinned_only: bool,
}

impl FetcherBuilder {
    /// Whether the system's trust store is used (default yes).
    pub fn system_roots(mut self, yes: bool) -> Self {
        self.system_roots = yes;
        self
    }

    /// Trusts the CA certificates of a PEM file too.
    pub fn extra_ca_file(mut self, path: Option<&Path>) -> Self {
        self.extra_ca_file = path.map(Path::to_path_buf);
        self
    }

    /// Trusts the CA certificates of PEM text too (tests).
    pub fn extra_ca_pem(mut self, pem: &[u8]) -> Self {
        self.extra_ca_pem.extend_from_slice(pem);
        self
    }

    /// Sends requests for `host` to `addr` instead of resolving it (tests: a
    /// server on a loopback port answering for `alpha.example`). URLs stay as
    /// they are (port 443) in origins and errors; only the wire differs.
    pub fn pin(mut self, host: &str, addr: SocketAddr) -> Self {
        self.pins.push((host.to_ascii_lowercase(), addr));
        self
    }

    /// Refuses every host that is not pinned, without resolving it (tests:
    /// guarantees that nothing leaves loopback).
    pub fn pinned_only(mut self) -> Self {
        self.pinned_only = true;
        self
    }

    pub fn build(self) -> Result<Fetcher, ClientError> {
        install_provider();
        let mut roots = RootCertStore::empty();
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
        if let Some(path) = &self.extra_ca_file {
            let named = super::local::read_bounded(path, MAX_CA_FILE).map_err(|e| {
                ClientError::CaContent {
                    path: path.clone(),
                    problem: e.detail(),
                }
            })?;
            if named.bytes.len() > MAX_CA_FILE {
                return Err(ClientError::CaContent {
                    path: path.clone(),
                    problem: format!("larger than {MAX_CA_FILE} bytes"),
                });
            }
            add_pem(&mut roots, &named.bytes).map_err(|problem| ClientError::CaContent {
                path: path.clone(),
                problem,
            })?;
        }
        if !self.extra_ca_pem.is_empty() {
            add_pem(&mut roots, &self.extra_ca_pem).map_err(|problem| ClientError::CaContent {
                path: PathBuf::from("<extra CA PEM>"),
                problem,
            })?;
        }
        if roots.is_empty() {
            return Err(ClientError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Build(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .timeout(self.limits.timeout)
            .connect_timeout(self.limits.connect_timeout)
            .no_proxy();
        for (host, addr) in &self.pins {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().map_err(|e| ClientError::Build(chain(&e)))?;
        Ok(Fetcher {
            client,
            limits: self.limits,
            ports: Arc::new(
                self.pins
                    .iter()
                    .map(|(h, a)| (h.clone(), a.port()))
                    .collect(),
            ),
            pinned_only: self.pinned_only,
        })
    }
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not PEM certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}

/// Installs ring as the process's rustls provider, once (our own config
/// names its provider explicitly; this covers anything that asks for the default).
fn install_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTPS client for participants' sources. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: FetchLimits,
    /// Hosts pinned to a loopback port (tests); empty in production.
    ports: Arc<HashMap<String, u16>>,
    pinned_only: bool,
}

impl Fetcher {
    pub fn builder(limits: FetchLimits) -> FetcherBuilder {
        FetcherBuilder {
            limits,
            system_roots: true,
            extra_ca_file: None,
            extra_ca_pem: Vec::new(),
            pins: Vec::new(),
            pinned_only: false,
        }
    }

    /// The production client: system trust store plus `extra_ca_file`.
    pub fn new(settings: &SourcesSettings) -> Result<Fetcher, ClientError> {
        Fetcher::builder(settings.fetch.clone())
            .extra_ca_file(settings.extra_ca_file.as_deref())
            .build()
    }

    pub fn limits(&self) -> &FetchLimits {
        &self.limits
    }

    /// Fetches `url` with the body capped at `max_response_bytes`.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        self.get_capped(url, self.limits.max_response_bytes).await
    }

    /// Like [`Fetcher::get`], every body byte also taken from `budget`
    /// (shared by the fetches of one refresh): when it runs out, the fetch
    /// fails with [`FetchErrorKind::BudgetExhausted`].
    pub async fn get_within(&self, url: &str, budget: &Budget) -> Result<Fetched, FetchError> {
        self.fetch(url, self.limits.max_response_bytes, budget)
            .await
    }

    /// Fetches `url` (https only), following at most `max_redirects`
    /// redirects (never to http), within `timeout` for the whole exchange,
    /// reading at most `cap` bytes of body: a larger body is an error and is
    /// not read past the cap.
    pub async fn get_capped(&self, url: &str, cap: u64) -> Result<Fetched, FetchError> {
        self.fetch(url, cap, &Budget::unlimited()).await
    }

    async fn fetch(&self, url: &str, cap: u64, budget: &Budget) -> Result<Fetched, FetchError> {
        let fail = |kind| FetchError {
            url: url.to_string(),
            kind,
        };
        let timeout = self.limits.timeout;
        match tokio::time::timeout(timeout, self.exchange(url, cap, budget)).await {
            Ok(Ok((final_url, bytes))) => Ok(Fetched {
                url: url.to_string(),
                final_url,
                bytes,
            }),
            Ok(Err(kind)) => Err(fail(kind)),
            Err(_) => Err(fail(FetchErrorKind::Timeout(timeout))),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        cap: u64,
        budget: &Budget,
    ) -> Result<(String, Vec<u8>), FetchErrorKind> {
        let mut current = parse_https(url)?;
        let mut redirects = 0;
        loop {
            if self.pinned_only
                && !current
                    .host_str()
                    .is_some_and(|h| self.ports.contains_key(h))
            {
                return Err(FetchErrorKind::Connect(format!(
                    "{} is not pinned (this client reaches pinned hosts only)",
                    current.host_str().unwrap_or("")
                )));
            }
            let response = self
                .client
                .get(self.wire(&current))
                .send()
                .await
                .map_err(|e| self.classify(&e))?;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .ok_or_else(|| {
                        FetchErrorKind::BadRedirect(format!("status {status} without Location"))
                    })?
                    .to_str()
                    .map_err(|_| FetchErrorKind::BadRedirect("Location is not text".into()))?;
                let next = current
                    .join(location)
                    .map_err(|e| FetchErrorKind::BadRedirect(format!("{location}: {e}")))?;
                if next.scheme() != "https" {
                    return Err(FetchErrorKind::RedirectToHttp(next.to_string()));
                }
                redirects += 1;
                if redirects > self.limits.max_redirects {
                    return Err(FetchErrorKind::TooManyRedirects(self.limits.max_redirects));
                }
                current = next;
                continue;
            }
            if !status.is_success() {
                return Err(FetchErrorKind::Status(status.as_u16()));
            }
            let bytes = read_capped(response, cap, budget, |e| self.classify(e)).await?;
            return Ok((current.to_string(), bytes));
        }
    }

    /// The URL put on the wire: a pinned host's port replaces the default.
    fn wire(&self, url: &Url) -> Url {
        let mut wire = url.clone();
        if url.port().is_none() {
            if let Some(port) = url.host_str().and_then(|h| self.ports.get(h)) {
                let _ = wire.set_port(Some(*port));
            }
        }
        wire
    }

    fn classify(&self, e: &reqwest::Error) -> FetchErrorKind {
        if e.is_timeout() {
            return FetchErrorKind::Timeout(self.limits.timeout);
        }
        if let Some(tls) = find_tls(e) {
            return FetchErrorKind::Tls(tls);
        }
        if e.is_connect() {
            return FetchErrorKind::Connect(chain(e));
        }
        FetchErrorKind::Http(chain(e))
    }
}

fn parse_https(url: &str) -> Result<Url, FetchErrorKind> {
    let u = Url::parse(url).map_err(|e| FetchErrorKind::BadUrl(e.to_string()))?;
    if u.scheme() != "https" || u.host_str().is_none() {
        return Err(FetchErrorKind::BadUrl(
            "only https:// URLs with a host".into(),
        ));
    }
    Ok(u)
}

async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
    budget: &Budget,
    classify: impl Fn(&reqwest::Error) -> FetchErrorKind,
) -> Result<Vec<u8>, FetchErrorKind> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(FetchErrorKind::TooLarge { limit: cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(FetchErrorKind::TooLarge { limit: cap });
        }
        if !budget.take(chunk.len() as u64) {
            return Err(FetchErrorKind::BudgetExhausted {
                limit: budget.total,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The rustls error somewhere in the chain, as text. `io::Error::source`
/// skips the error it wraps, so wrapped errors are opened with `get_ref`.
fn find_tls(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return find_tls(inner);
        }
        cur = err.source();
    }
    None
}

/// An error's causes on one line, each said once, leaving out reqwest's
/// own "error sending request for url (...)" (which names the wire URL,
/// with a test's port; the caller names the URL).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<reqwest::Error>().is_none() {
            push(err.to_string());
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    if parts.is_empty() {
        return e.to_string();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_taken_never_overspent() {
        let b = Budget::new(250);
        assert!(b.take(100));
        assert!(b.take(100));
        assert!(!b.take(100));
        assert_eq!(b.left(), 50);
        assert!(b.take(50));
        assert!(b.is_spent());
    }

    #[test]
    fn only_https_urls() {
        assert!(parse_https("https://alpha.example/x").is_ok());
        assert!(matches!(
            parse_https("http://alpha.example/x"),
            Err(FetchErrorKind::BadUrl(_))
        ));
        assert!(matches!(
            parse_https("alpha.example"),
            Err(FetchErrorKind::BadUrl(_))
        ));
    }

    #[test]
    fn user_agent_names_the_version() {
        assert_eq!(USER_AGENT, format!("wotgate/{}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn errors_name_the_url_and_the_reason() {
        let e = FetchError {
            url: "https://alpha.example/.well-known/wotgate/statement.asc".into(),
            kind: FetchErrorKind::TooLarge { limit: 1024 },
        };
        assert_eq!(
            e.to_string(),
            "https://alpha.example/.well-known/wotgate/statement.asc: response body larger than 1024 bytes; cut there and not used"
        );
        assert_eq!(e.kind.label(), "too_large");
        assert!(FetchErrorKind::Status(404).is_absent());
        assert!(!FetchErrorKind::Status(500).is_absent());
    }

    #[test]
    fn a_pinned_host_keeps_its_url_but_goes_to_its_port() {
        let f = Fetcher::builder(FetchLimits::default())
            .system_roots(false)
            .extra_ca_pem(test_ca().as_bytes())
            .pin("alpha.example", "127.0.0.1:8443".parse().unwrap())
            .build()
            .unwrap();
        let u = Url::parse("https://alpha.example/a?l=x").unwrap();
        assert_eq!(f.wire(&u).as_str(), "https://alpha.example:8443/a?l=x");
        let v = Url::parse("https://beta.example/a").unwrap();
        assert_eq!(f.wire(&v).as_str(), "https://beta.example/a");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let e = Fetcher::builder(FetchLimits::default())
            .system_roots(false)
            .extra_ca_pem(b"not pem")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        let e = Fetcher::builder(FetchLimits::default())
            .system_roots(false)
            .build()
            .unwrap_err();
        assert!(matches!(e, ClientError::NoRoots));
    }

    /// A self-signed CA certificate (any will do for building a client).
    fn test_ca() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }
}
