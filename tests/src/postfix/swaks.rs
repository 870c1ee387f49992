//! swaks as the SMTP client of the Postfix tests, run from a client
//! namespace; its transcript parsed into the server's replies.

use std::{net::IpAddr, path::PathBuf, process::Command};

/// STARTTLS options: client certificate, forced protocol and cipher.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// `--tls-cert` and `--tls-key` (PEM files).
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// `--tls-protocol`, e.g. `tlsv1_2`.
    pub protocol: Option<String>,
    /// `--tls-cipher` (an OpenSSL cipher string), e.g. `ECDHE-ECDSA-AES128-SHA256`.
    pub cipher: Option<String>,
}

/// One message to send. Build with [`Swaks::new`] and the setters, then
/// [`Swaks::send`].
#[derive(Clone, Debug)]
pub struct Swaks {
    pub ns: String,
    pub source: IpAddr,
    pub server: IpAddr,
    pub port: u16,
    pub helo: String,
    pub from: String,
    pub to: Vec<String>,
    /// Extra header lines (`Name: value`), `--add-header` each.
    pub headers: Vec<String>,
    /// `-tls` (STARTTLS required) with these options.
    pub tls: Option<ClientTls>,
    pub timeout_secs: u32,
}

impl Swaks {
    /// From `source` inside namespace `ns` to `server`:25, HELO
    /// client.example, sender sender@client.example, no recipient yet.
    pub fn new(ns: &str, source: IpAddr, server: IpAddr) -> Swaks {
        Swaks {
            ns: ns.into(),
            source,
            server,
            port: 25,
            helo: "client.example".into(),
            from: "sender@client.example".into(),
            to: Vec::new(),
            headers: Vec::new(),
            tls: None,
            timeout_secs: 30,
        }
    }

    pub fn helo(mut self, helo: &str) -> Swaks {
        self.helo = helo.into();
        self
    }

    pub fn from(mut self, sender: &str) -> Swaks {
        self.from = sender.into();
        self
    }

    pub fn to(mut self, recipients: &[String]) -> Swaks {
        self.to = recipients.to_vec();
        self
    }

    pub fn header(mut self, line: &str) -> Swaks {
        self.headers.push(line.into());
        self
    }

    pub fn tls(mut self, tls: ClientTls) -> Swaks {
        self.tls = Some(tls);
        self
    }

    /// The command line, `nsenter` included.
    pub fn command(&self) -> Command {
        assert!(!self.to.is_empty(), "swaks needs a recipient");
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns))
            .arg("swaks")
            .args(["--server", &self.server.to_string()])
            .args(["--port", &self.port.to_string()])
            .args(["--local-interface", &self.source.to_string()])
            .args(["--helo", &self.helo])
            .args(["--from", &self.from])
            .args(["--to", &self.to.join(",")])
            .args(["--timeout", &format!("{}s", self.timeout_secs)]);
        for h in &self.headers {
            c.args(["--add-header", h]);
        }
        if let Some(t) = &self.tls {
            c.arg("-tls");
            if let Some((cert, key)) = &t.cert_and_key {
                c.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            }
            if let Some(p) = &t.protocol {
                c.args(["--tls-protocol", p]);
            }
            if let Some(x) = &t.cipher {
                c.args(["--tls-cipher", x]);
            }
        }
        c
    }

    /// Runs swaks to the end; never panics on an SMTP failure.
    pub fn send(&self) -> Transcript {
        let out = self.command().output().expect("run swaks");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Transcript::parse(text, out.status.code())
    }
}

/// A server reply (multi-line replies joined with `\n`) and the client
/// line it answered (`EHLO x`, `RCPT TO:<..>`, `.` for end of data, empty
/// for the greeting).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
    pub command: String,
}

/// What swaks printed and the replies found in it.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub text: String,
    /// swaks's exit status (0: the message was accepted).
    pub exit: Option<i32>,
    pub replies: Vec<Reply>,
}

impl Transcript {
    /// swaks marks server lines `<-`, `<**` (error), `<~`, `<~*` (inside
    /// TLS) and client lines `->`, `~>`, `**>`; each line's text follows
    /// the marker and whitespace.
    pub fn parse(text: String, exit: Option<i32>) -> Transcript {
        let mut replies = Vec::new();
        let mut command = String::new();
        let mut pending = String::new();
        for line in text.lines() {
            let t = line.trim_start();
            let (marker, rest) = t.split_once(' ').unwrap_or((t, ""));
            let rest = rest.trim_start();
            match marker {
                "->" | "~>" | "**>" | "*~>" => command = rest.to_string(),
                "<-" | "<**" | "<~" | "<~*" => {
                    if rest.len() < 3 {
                        continue;
                    }
                    if !pending.is_empty() {
                        pending.push('\n');
                    }
                    pending.push_str(rest);
                    // "250-..." continues, "250 ..." (or bare "250") ends.
                    if rest.as_bytes().get(3) != Some(&b'-') {
                        if let Ok(code) = rest[..3].parse() {
                            replies.push(Reply {
                                code,
                                text: std::mem::take(&mut pending),
                                command: command.clone(),
                            });
                        }
                        pending.clear();
                    }
                }
                _ => {}
            }
        }
        Transcript {
            text,
            exit,
            replies,
        }
    }

    /// Whether the server greeted at all (a dropped SYN never gets here).
    pub fn connected(&self) -> bool {
        self.replies.first().is_some_and(|r| r.command.is_empty())
    }

    /// The last reply before QUIT: the verdict on the message (the reply to
    /// end of data when it got that far, else the one that ended it).
    pub fn final_reply(&self) -> Option<&Reply> {
        self.replies
            .iter()
            .rev()
            .find(|r| !r.command.eq_ignore_ascii_case("QUIT"))
    }

    pub fn final_code(&self) -> Option<u16> {
        self.final_reply().map(|r| r.code)
    }

    /// The replies to commands starting with `prefix` (case-insensitive).
    pub fn replies_to(&self, prefix: &str) -> Vec<&Reply> {
        self.replies
            .iter()
            .filter(|r| {
                r.command
                    .get(..prefix.len())
                    .is_some_and(|c| c.eq_ignore_ascii_case(prefix))
            })
            .collect()
    }

    /// The queue id from `250 2.0.0 Ok: queued as ID`.
    pub fn queue_id(&self) -> Option<&str> {
        self.replies
            .iter()
            .find_map(|r| r.text.split("queued as ").nth(1))
            .map(str::trim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies_and_their_commands() {
        let t = Transcript::parse(
            "=== Connected to 2001:db8:ffff::1.\n<-  220 mx ESMTP\n -> EHLO c\n<-  250-mx\n<-  250 CHUNKING\n -> STARTTLS\n<-  220 2.0.0 Ready\n ~> EHLO c\n<~  250 mx\n ~> RCPT TO:<a@mx>\n<~* 550 5.7.1 no\n ~> RCPT TO:<b@mx>\n<~  250 2.1.5 Ok\n ~> DATA\n<~  354 go\n ~> Subject: x\n ~> .\n<~  250 2.0.0 Ok: queued as ABC123\n ~> QUIT\n<~  221 2.0.0 Bye\n".into(),
            Some(0),
        );
        assert!(t.connected());
        assert_eq!(t.replies.len(), 9);
        assert_eq!(t.replies[1].text, "250-mx\n250 CHUNKING");
        assert_eq!(
            t.replies_to("RCPT")
                .iter()
                .map(|r| r.code)
                .collect::<Vec<_>>(),
            [550, 250]
        );
        assert_eq!(t.final_code(), Some(250));
        assert_eq!(t.final_reply().unwrap().command, ".");
        assert_eq!(t.queue_id(), Some("ABC123"));
        let none = Transcript::parse("*** Error connecting 2001:db8::1:25:\n".into(), Some(2));
        assert!(!none.connected());
        assert_eq!(none.final_code(), None);
    }
}
