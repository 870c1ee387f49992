//! Postfix's policy delegation protocol: `name=value` lines, an empty line
//! ends a request; parsed line by line with limits, never trusting the peer.

/// Bounds on one request (from `[policy]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one request, its lines and line ends included.
    pub max_request_bytes: usize,
    pub max_attributes: usize,
}

/// Why a request was refused; the connection is answered with a deferral
/// and closed. `line` counts from 1 within the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request longer than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {limit} attributes in one request")]
    TooManyAttributes { limit: usize },
    #[error("line {line}: no '=' (expected name=value)")]
    NoEquals { line: usize },
    #[error("line {line}: empty attribute name")]
    EmptyName { line: usize },
    #[error("line {line}: attribute name {name:?} is not lower-case letters, digits and '_'")]
    BadName { line: usize, name: String },
    #[error("line {line}: NUL byte")]
    Nul { line: usize },
    #[error("line {line}: attribute {name} given twice")]
    Duplicate { line: usize, name: String },
    #[error("an empty request (a blank line before any attribute)")]
    Empty,
}

/// One complete request: attribute names to values (unknown names kept,
/// values as sent; invalid UTF-8 replaced, as nothing we check needs it).
///
/// Stored as one text with offsets (two allocations per request instead of
/// two per attribute); names are unique, a lookup scans at most
/// `max_attributes` short names.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Names and values back to back.
    text: String,
    /// Per attribute: where its name starts, where its name ends (its value
    /// starts there) and where its value ends, in `text`.
    attrs: Vec<(usize, usize, usize)>,
}

impl PartialEq for Request {
    /// The same names with the same values, in any order.
    fn eq(&self, other: &Request) -> bool {
        self.attrs.len() == other.attrs.len() && self.iter().all(|(n, v)| other.raw(n) == Some(v))
    }
}

impl Eq for Request {}

impl Request {
    /// The value of `name`; `None` when absent. Postfix sends empty values
    /// for what it does not know, so callers treat "" as absent too.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    /// The value of `name` as sent, empty or not.
    fn raw(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The attributes as sent, in order.
    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs
            .iter()
            .map(|&(a, b, c)| (&self.text[a..b], &self.text[b..c]))
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// Parses a whole request text (tests, tools): lines ending in `\n`,
    /// the last one empty.
    pub fn parse(text: &[u8], limits: Limits) -> Result<Request, RequestError> {
        let mut b = RequestBuilder::new(limits);
        for line in text.split_inclusive(|&c| c == b'\n') {
            if let Some(r) = b.push_line(line)? {
                return Ok(r);
            }
        }
        Err(RequestError::Empty)
    }
}

/// Collects one request from successive lines.
#[derive(Debug)]
pub struct RequestBuilder {
    limits: Limits,
    bytes: usize,
    lines: usize,
    /// The request being collected; its buffers are kept between requests.
    current: Request,
    /// A finished request given back with [`RequestBuilder::recycle`]: the
    /// next one is collected into its buffers.
    spare: Option<Request>,
}

impl RequestBuilder {
    pub fn new(limits: Limits) -> RequestBuilder {
        RequestBuilder {
            limits,
            bytes: 0,
            lines: 0,
            current: Request::default(),
            spare: None,
        }
    }

    /// Bytes of the request so far (what a reader may still take is the
    /// limit minus this).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no line of this request has arrived yet.
    pub fn is_fresh(&self) -> bool {
        self.lines == 0
    }

    /// Gives a finished request's buffers back for the next one.
    pub fn recycle(&mut self, mut done: Request) {
        done.text.clear();
        done.attrs.clear();
        self.spare = Some(done);
    }

    /// Adds one line (with or without its `\n`; a `\r` before it is
    /// dropped); returns the request when the line was the empty one ending it.
    pub fn push_line(&mut self, raw: &[u8]) -> Result<Option<Request>, RequestError> {
        self.lines += 1;
        self.bytes += raw.len();
        let line = self.lines;
        if self.bytes > self.limits.max_request_bytes {
            return Err(RequestError::TooLarge {
                limit: self.limits.max_request_bytes,
            });
        }
        let text = raw.strip_suffix(b"\n").unwrap_or(raw);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            if self.current.attrs.is_empty() {
                return Err(RequestError::Empty);
            }
            // The next request goes into the buffers of a recycled one (no
            // allocation), else into exactly sized copies.
            let req = match self.spare.take() {
                Some(next) => std::mem::replace(&mut self.current, next),
                None => {
                    let req = self.current.clone();
                    self.current.text.clear();
                    self.current.attrs.clear();
                    req
                }
            };
            self.bytes = 0;
            self.lines = 0;
            return Ok(Some(req));
        }
        if text.contains(&0) {
            return Err(RequestError::Nul { line });
        }
        let eq = text
            .iter()
            .position(|&c| c == b'=')
            .ok_or(RequestError::NoEquals { line })?;
        let (name, value) = (&text[..eq], &text[eq + 1..]);
        if name.is_empty() {
            return Err(RequestError::EmptyName { line });
        }
        if !name
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        {
            return Err(RequestError::BadName {
                line,
                name: String::from_utf8_lossy(&name[..name.len().min(64)]).into_owned(),
            });
        }
        if self.current.attrs.len() >= self.limits.max_attributes {
            return Err(RequestError::TooManyAttributes {
                limit: self.limits.max_attributes,
            });
        }
        // The name is ASCII (checked above).
        let name = std::str::from_utf8(name).unwrap_or_default();
        if self.current.raw(name).is_some() {
            return Err(RequestError::Duplicate {
                line,
                name: name.to_string(),
            });
        }
        let r = &mut self.current;
        let start = r.text.len();
        r.text.push_str(name);
        let mid = r.text.len();
        match std::str::from_utf8(value) {
            Ok(v) => r.text.push_str(v),
            Err(_) => r.text.push_str(&String::from_utf8_lossy(value)),
        }
        r.attrs.push((start, mid, r.text.len()));
        Ok(None)
    }
}

/// Decodes xtext (RFC 3461: `+XX` hex escapes), as Postfix sends `ccert_*`.
/// `None` when an escape is malformed.
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_request_bytes: 2048,
        max_attributes: 8,
    };

    #[test]
    fn parses_a_postfix_request() {
        let r = Request::parse(
            b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=2001:db8:a::10\nsender=\nhelo_name=mx.alpha.example\nfuture_attribute=x=y\n\n",
            L,
        )
        .unwrap();
        assert_eq!(r.get("client_address"), Some("2001:db8:a::10"));
        assert_eq!(r.get("sender"), None, "empty is absent");
        assert_eq!(
            r.get("future_attribute"),
            Some("x=y"),
            "only the first '=' splits"
        );
        assert_eq!(r.len(), 6);
    }

    #[test]
    fn refuses_what_postfix_never_sends() {
        let e = |t: &[u8]| Request::parse(t, L).unwrap_err();
        assert_eq!(
            e(b"request=x\nno equals here\n\n"),
            RequestError::NoEquals { line: 2 }
        );
        assert_eq!(e(b"=value\n\n"), RequestError::EmptyName { line: 1 });
        assert_eq!(e(b"a=1\x00\n\n"), RequestError::Nul { line: 1 });
        assert!(matches!(
            e(b"Client=1\n\n"),
            RequestError::BadName { line: 1, .. }
        ));
        assert!(matches!(
            e(b"a=1\na=2\n\n"),
            RequestError::Duplicate { line: 2, .. }
        ));
        assert_eq!(e(b"\n"), RequestError::Empty);
        let many: Vec<u8> = (0..9)
            .flat_map(|i| format!("a{i}=v\n").into_bytes())
            .collect();
        assert_eq!(e(&many), RequestError::TooManyAttributes { limit: 8 });
        let long = format!("a={}\n\n", "x".repeat(3000));
        assert_eq!(e(long.as_bytes()), RequestError::TooLarge { limit: 2048 });
        assert_eq!(
            e(b"\xff\xfe=1\n\n").to_string(),
            "line 1: attribute name \"\u{fffd}\u{fffd}\" is not lower-case letters, digits and '_'"
        );
    }

    #[test]
    fn crlf_and_requests_in_a_row() {
        let mut b = RequestBuilder::new(L);
        assert_eq!(b.push_line(b"a=1\r\n").unwrap(), None);
        let r = b.push_line(b"\r\n").unwrap().unwrap();
        assert_eq!(r.get("a"), Some("1"));
        assert!(b.is_fresh() && b.bytes() == 0);
        assert!(b.push_line(b"b=2\n").unwrap().is_none());
        assert_eq!(b.push_line(b"\n").unwrap().unwrap().get("b"), Some("2"));
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_decode("AB:CD").as_deref(), Some("AB:CD"));
        assert_eq!(xtext_decode("a+2Bb+3D").as_deref(), Some("a+b="));
        assert_eq!(xtext_decode("bad+2"), None);
        assert_eq!(xtext_decode("bad+zz"), None);
    }
}
