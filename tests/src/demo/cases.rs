//! The demo's cases: who sends, to whom, what must happen and why; one
//! swaks run each, judged by the SMTP replies, the delivered message and
//! the gate's own counters.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::mx::{gate_packets, Daemon};
use super::net::{addr, Net, MX_V4, MX_V6};
use crate::postfix::{
    mailbox::Message,
    swaks::{ClientTls, Swaks, Transcript},
    tls::TestCert,
    PostfixInstance,
};

/// What must happen to one recipient of a case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expect {
    /// 250 at RCPT and end of data; delivered with `x-wot=pass` carrying
    /// all of these `key=value` fields.
    Delivered(&'static [&'static str]),
    /// 554 5.7.1 at RCPT, the policy naming the failed check.
    Rejected(&'static str),
    /// No connection: the SYN dropped, counted under this gate reason.
    Dropped(&'static str),
}

/// One peer sending one message.
pub struct Case {
    pub id: &'static str,
    /// The peer's namespace and address (see `net::PEERS`).
    pub peer: &'static str,
    /// The sender's domain (HELO mail.DOMAIN, MAIL FROM postmaster@DOMAIN).
    pub domain: &'static str,
    pub story: &'static str,
    /// Present epsilon's TLS client certificate.
    pub tls: bool,
    /// (recipient: "alice" or "bob", expectation).
    pub rcpts: Vec<(&'static str, Expect)>,
    /// `trust explain` queries (with `--recipient` when given) that say why.
    pub explain: Vec<(&'static str, Option<&'static str>)>,
}

/// The cases of the first round, in order.
pub fn first_round() -> Vec<Case> {
    use Expect::*;
    let c = |id, peer, domain, story, rcpts, explain| Case {
        id,
        peer,
        domain,
        story,
        tls: false,
        rcpts,
        explain,
    };
    vec![
        c("1", "alpha", "alpha.example", "certified by our root (published in mx.example's certified.pgp)",
          vec![("bob", Delivered(&["policy.domain=alpha.example", "policy.depth=1"]))], vec![]),
        c("2", "beta", "beta.example", "certified by alpha; its key is found only in alpha's certified.pgp",
          vec![("bob", Delivered(&["policy.domain=beta.example", "policy.depth=2"]))], vec![("beta.example", None)]),
        c("3", "gamma", "gamma.example", "certified by beta: depth 3, beyond the configured depth 2",
          vec![("bob", Dropped("untrusted_drop"))], vec![("gamma.example", None)]),
        c("4", "mallory", "mallory.example", "refused by our configuration, inside alpha's trusted 2001:db8:a::/48",
          vec![("bob", Dropped("denied_drop"))], vec![("mallory.example", None)]),
        c("5", "eve", "eve.example", "unknown: no key, no statement, nobody vouches for it",
          vec![("bob", Dropped("untrusted_drop"))], vec![]),
        c("6", "ipv4", "ipv4.example", "an IPv4 sender: the gate trusts IPv6 sources only",
          vec![("bob", Dropped("non_ipv6_drop"))], vec![]),
        c("7", "delta", "delta.example", "trusted only by alice's own web (recipients.d: alice extends the system web with delta as a root)",
          vec![("alice", Delivered(&["policy.domain=delta.example", "policy.web="])), ("bob", Rejected("prefix"))],
          vec![("delta.example", Some("alice")), ("delta.example", Some("bob"))]),
        Case { tls: true, ..c("8", "epsilon", "epsilon.example", "certified by our root; presents the TLS key its statement names",
          vec![("bob", Delivered(&["policy.domain=epsilon.example", "policy.checks=\"prefix,sender,tls-key,tls-aead\""]))], vec![]) },
        c("8b", "epsilon", "epsilon.example", "the same peer without its TLS client certificate",
          vec![("bob", Rejected("tls-key"))], vec![]),
    ]
}

/// The case after alpha certifies gamma and the daemon reloads.
pub fn after_reload() -> Case {
    Case {
        id: "9",
        peer: "gamma",
        domain: "gamma.example",
        story: "alpha now certifies gamma and publishes it: depth 2",
        tls: false,
        rcpts: vec![(
            "bob",
            Expect::Delivered(&["policy.domain=gamma.example", "policy.depth=2"]),
        )],
        explain: vec![("gamma.example", None)],
    }
}

/// What happened to one recipient.
#[derive(Clone, Debug)]
pub struct Seen {
    pub rcpt: &'static str,
    pub expect: Expect,
    /// In words: `accepted (250 ...)`, `rejected: 554 ...`, `dropped at the gate (...)`.
    pub what: String,
    pub ok: bool,
    /// Our Authentication-Results field on the delivered copy.
    pub header: Option<String>,
}

/// Everything the demo needs to send and judge.
pub struct Ctx<'a> {
    pub net: &'a Net,
    pub pf: &'a PostfixInstance,
    pub daemon: &'a Daemon,
    pub tls: &'a TestCert,
}

impl Ctx<'_> {
    pub fn address(&self, rcpt: &str) -> String {
        self.pf.address(rcpt)
    }

    /// Sends `case`'s message and judges every recipient.
    pub fn run(&self, case: &Case) -> Result<Vec<Seen>> {
        let source: IpAddr = addr(case.peer).parse()?;
        let server: IpAddr = if source.is_ipv4() { MX_V4 } else { MX_V6 }.parse()?;
        let tag = format!("demo-{}", case.id);
        let to: Vec<String> = case.rcpts.iter().map(|(r, _)| self.address(r)).collect();
        let mut s = Swaks::new(&self.net.peer(case.peer).name, source, server)
            .helo(&format!("mail.{}", case.domain))
            .from(&format!("postmaster@{}", case.domain))
            .to(&to)
            .header(&format!("X-Case: {tag}"));
        if case.tls {
            s = s.tls(ClientTls {
                cert_and_key: Some((self.tls.cert.clone(), self.tls.key.clone())),
                ..Default::default()
            });
        }
        let dropping = case
            .rcpts
            .iter()
            .any(|(_, e)| matches!(e, Expect::Dropped(_)));
        if dropping {
            // A dropped SYN shows as a connect timeout: keep it short.
            s.timeout_secs = 3;
        }
        let counters = self.daemon.metrics()?;
        let delivered = self.pf.delivery_count();
        let t = s.send();
        super::check_interrupt()?;
        if !t.connected() {
            let after = self.daemon.metrics()?;
            return Ok(case
                .rcpts
                .iter()
                .map(|&(rcpt, expect)| {
                    let mut reasons = Vec::new();
                    for r in ["untrusted_drop", "denied_drop", "non_ipv6_drop"] {
                        let n = gate_packets(&after, r) - gate_packets(&counters, r);
                        if n > 0.0 {
                            reasons.push(format!("{r} +{n}"));
                        }
                    }
                    let ok = match expect {
                        Expect::Dropped(r) => gate_packets(&after, r) > gate_packets(&counters, r),
                        _ => false,
                    };
                    Seen {
                        rcpt,
                        expect,
                        what: format!(
                            "dropped at the gate: no answer to the SYN (counters: {})",
                            if reasons.is_empty() {
                                "none moved".to_string()
                            } else {
                                reasons.join(", ")
                            }
                        ),
                        ok,
                        header: None,
                    }
                })
                .collect());
        }
        let accepted = case
            .rcpts
            .iter()
            .filter(|(_, e)| matches!(e, Expect::Delivered(_)))
            .count();
        let copies = if t.queue_id().is_some() {
            self.wait_copies(&tag, delivered + accepted)?
        } else {
            Vec::new()
        };
        let rcpt_replies = t.replies_to("RCPT");
        Ok(case
            .rcpts
            .iter()
            .enumerate()
            .map(|(i, &(rcpt, expect))| {
                judge(
                    &t,
                    rcpt_replies.get(i).copied(),
                    rcpt,
                    expect,
                    &copies,
                    &self.address(rcpt),
                )
            })
            .collect())
    }

    /// Waits until `n` deliveries in all are logged (at most 20 s) and
    /// returns the copies tagged `tag`.
    fn wait_copies(&self, tag: &str, n: usize) -> Result<Vec<Message>> {
        let end = Instant::now() + Duration::from_secs(20);
        while self.pf.delivery_count() < n && Instant::now() < end {
            super::check_interrupt()?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(self
            .pf
            .messages()
            .into_iter()
            .filter(|m| m.header_values("X-Case").contains(&tag))
            .collect())
    }
}

/// One recipient's outcome against its expectation.
fn judge(
    t: &Transcript,
    reply: Option<&crate::postfix::swaks::Reply>,
    rcpt: &'static str,
    expect: Expect,
    copies: &[Message],
    address: &str,
) -> Seen {
    let Some(reply) = reply else {
        let last = t.final_reply().map(|r| r.text.clone()).unwrap_or_default();
        return Seen {
            rcpt,
            expect,
            what: format!("no RCPT reply (last reply: {last})"),
            ok: false,
            header: None,
        };
    };
    let first_line = reply.text.lines().last().unwrap_or("").to_string();
    if reply.code != 250 {
        let ok = match expect {
            Expect::Rejected(check) => {
                reply.code == 554
                    && reply.text.contains("5.7.1")
                    && reply
                        .text
                        .contains(&format!("wotgate {check} check failed"))
            }
            _ => false,
        };
        return Seen {
            rcpt,
            expect,
            what: format!("rejected at RCPT: {first_line}"),
            ok,
            header: None,
        };
    }
    // Accepted at RCPT: the message must be queued and delivered once,
    // with our pass label.
    let queued = t.final_code() == Some(250) && t.queue_id().is_some();
    // Only accepted recipients get a copy; a case has at most one.
    let copy = (copies.len() == 1).then(|| &copies[0]);
    let header = copy.and_then(|m| {
        m.header_values("Authentication-Results")
            .into_iter()
            .find(|v| v.starts_with(&format!("{};", super::mx::MX_NAME)))
            .map(str::to_string)
    });
    let ok = match expect {
        Expect::Delivered(fields) => {
            queued
                && header.as_deref().is_some_and(|h| {
                    h.contains("x-wot=pass")
                        && fields.iter().all(|f| match *f {
                            "policy.web=" => h.contains(&format!("policy.web={address} ")),
                            f => h.contains(f),
                        })
                })
        }
        _ => false,
    };
    let what = match (&header, queued) {
        (Some(_), true) => format!(
            "accepted and delivered: {}",
            t.final_reply().map(|r| r.text.as_str()).unwrap_or("")
        ),
        (None, true) => "accepted, but no delivered copy with our header".to_string(),
        (_, false) => format!(
            "accepted at RCPT, then: {}",
            t.final_reply()
                .map(|r| r.text.as_str())
                .unwrap_or("nothing")
        ),
    };
    Seen {
        rcpt,
        expect,
        what,
        ok,
        header,
    }
}
