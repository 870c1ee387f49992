//! The test user's mbox (as Postfix's local(8) writes it) split into
//! messages with unfolded headers, in order, duplicates kept.

/// One delivered message.
#[derive(Clone, Debug)]
pub struct Message {
    /// The mbox separator line (`From sender date`).
    pub from_line: String,
    /// Headers in order, continuation lines unfolded (joined with a space
    /// for the original line break).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Message {
    /// The values of every header called `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// How many headers called `name` the message carries.
    pub fn count(&self, name: &str) -> usize {
        self.header_values(name).len()
    }

    /// The position of the first header called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// Splits an mbox: a message starts at a `From ` line at the start of the
/// file or after an empty line (local(8) quotes body lines as `>From `).
pub fn parse_mbox(text: &str) -> Vec<Message> {
    let mut raw: Vec<Vec<&str>> = Vec::new();
    let mut prev_empty = true;
    for line in text.lines() {
        if prev_empty && line.starts_with("From ") {
            raw.push(Vec::new());
        }
        if let Some(m) = raw.last_mut() {
            m.push(line);
        }
        prev_empty = line.is_empty();
    }
    raw.into_iter().map(|lines| parse_message(&lines)).collect()
}

fn parse_message(lines: &[&str]) -> Message {
    let from_line = lines[0].to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut i = 1;
    while i < lines.len() && !lines[i].is_empty() {
        let l = lines[i];
        if l.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(l.trim_start());
            }
        } else if let Some((n, v)) = l.split_once(':') {
            headers.push((n.to_string(), v.trim_start().to_string()));
        }
        i += 1;
    }
    let body = lines.get(i + 1..).unwrap_or_default().join("\n");
    Message {
        from_line,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_messages_and_unfolds_headers() {
        let mbox = "From a@x  Wed Dec  2 11:42:11 2026\nReceived: from x\n\tby y\nX-A: 1\nX-a: 2\n\nbody\n>From quoted\n\nFrom b@x  Wed Dec  2 11:42:12 2026\nSubject: two\n\nsecond\n\n";
        let m = parse_mbox(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].header_values("received"), ["from x by y"]);
        assert_eq!(m[0].count("X-A"), 2);
        assert_eq!(m[0].position("x-a"), Some(1));
        assert!(m[0].body.contains(">From quoted"));
        assert_eq!(m[1].header_values("Subject"), ["two"]);
        assert_eq!(m[1].body.trim(), "second");
    }
}
