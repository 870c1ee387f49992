//! Fetching with a [`Fetcher`]: redirects followed and checked hop by hop,
//! the exchange timed, the body read chunk by chunk within its cap and budget.

use reqwest::{StatusCode, Url};

use super::error::{chain, find_tls};
use super::{Budget, ClientError, FetchError, FetchErrorKind, Fetched, Fetcher, FetcherBuilder};
use crate::source::settings::{FetchLimits, SourcesSettings};

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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A self-signed CA certificate (any will do for building a client).
    fn test_ca() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }
}
