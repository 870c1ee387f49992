use std::path::Path;

use super::*;
use crate::model::config::{Config, RecipientWeb};

const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

fn cfg(extra: &str) -> Config {
    Config::parse(
        &format!("[trust]\nkeyrings = [\"k\"]\nroots = [\"{ROOT}\"]\n[policy]\nheader_name = \"X-Wotgate-AR-s3cr3t\"\n{extra}"),
        "wotgate.toml",
        Path::new("/etc/wotgate"),
    )
    .unwrap()
}

const DATA: &str = "check_policy_service { unix:private/wotgate, timeout=10s, { default_action = DEFER_IF_PERMIT 4.3.5 down } }";

/// A main.cf as `postconf` reports it, correct for the default `[policy]`.
fn good() -> BTreeMap<String, String> {
    [
        ("queue_directory", "/var/spool/postfix"),
        ("smtpd_data_restrictions", DATA),
        (
            "smtpd_recipient_restrictions",
            "permit_mynetworks, reject_unauth_destination",
        ),
        ("inet_protocols", "all"),
        ("smtpd_tls_ask_ccert", "yes"),
        ("smtpd_tls_fingerprint_digest", "sha256"),
        ("smtpd_tls_protocols", ">=TLSv1.2"),
        ("header_checks", "regexp:/etc/postfix/wotgate_header_checks"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn recipe() -> Vec<(String, String)> {
    vec![(
        "regexp:/etc/postfix/wotgate_header_checks".into(),
        "/^X-Wotgate-AR-s3cr3t:(.*)$/ REPLACE Authentication-Results:$1\n/^Authentication-Results:\\s*mx\\.example([[:space:];(]|$)/ IGNORE\n".into(),
    )]
}

fn failed(f: &[Finding]) -> Vec<&'static str> {
    f.iter().filter(|f| !f.ok).map(|f| f.check).collect()
}

#[test]
fn a_correct_site_passes_every_check() {
    let f = diagnose(&good(), &cfg(""), &recipe());
    assert_eq!(failed(&f), Vec::<&str>::new(), "{f:#?}");
    assert!(f.len() >= 8);
}

#[test]
fn each_problem_is_named_with_its_fix() {
    let c = cfg("");
    let with = |k: &str, v: &str| {
        let mut p = good();
        p.insert(k.into(), v.into());
        diagnose(&p, &c, &recipe())
    };
    let f = with("smtpd_data_restrictions", "");
    assert_eq!(failed(&f), ["policy-at-data"]);
    assert!(f[0].fix.as_ref().unwrap().starts_with(
        "main.cf: smtpd_data_restrictions = check_policy_service { unix:private/wotgate,"
    ));
    let f = with(
        "smtpd_data_restrictions",
        "check_policy_service { unix:private/other }",
    );
    assert_eq!(
        failed(&f),
        ["policy-at-data"],
        "another service is not ours"
    );
    let f = with(
        "smtpd_data_restrictions",
        "check_policy_service { unix:private/wotgate, { default_action = DUNNO } }",
    );
    assert_eq!(failed(&f), ["policy-default-action"]);
    let f = with(
        "smtpd_data_restrictions",
        "check_policy_service unix:private/wotgate",
    );
    assert_eq!(
        failed(&f),
        Vec::<&str>::new(),
        "the bare form, Postfix's default action"
    );
    assert_eq!(failed(&with("inet_protocols", "ipv4")), ["ipv6"]);
    assert_eq!(
        failed(&with("smtpd_tls_ask_ccert", "no")),
        ["tls-client-certificate"]
    );
    assert_eq!(
        failed(&with("smtpd_tls_fingerprint_digest", "md5")),
        ["tls-fingerprint-digest"]
    );
    assert_eq!(
        failed(&with("smtpd_tls_protocols", "!SSLv2, !SSLv3")),
        ["tls-protocols"]
    );
    assert_eq!(
        failed(&with(
            "smtpd_tls_protocols",
            "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
        )),
        Vec::<&str>::new()
    );
    // No recipe, or half of it.
    assert_eq!(
        failed(&diagnose(&good(), &c, &[])),
        ["forged-header-recipe"]
    );
    let half = vec![(
        "t".to_string(),
        "/^X-Wotgate-AR-s3cr3t:(.*)$/ REPLACE Authentication-Results:$1\n".to_string(),
    )];
    let f = diagnose(&good(), &c, &half);
    assert_eq!(failed(&f), ["forged-header-recipe"]);
    assert!(f.iter().any(|f| f.detail.contains("does not drop")));
}

#[test]
fn the_socket_must_be_inside_the_queue_and_webs_need_rcpt() {
    let outside = cfg("socket = \"/run/wotgate/policy.sock\"\n");
    let f = diagnose(&good(), &outside, &recipe());
    assert_eq!(failed(&f), ["policy-socket"]);
    assert!(f[0].detail.contains("outside Postfix's queue_directory"));
    // TCP loopback instead.
    let tcp = cfg("socket = \"\"\ntcp_listen = \"127.0.0.1:10045\"\n");
    let mut p = good();
    p.insert(
        "smtpd_data_restrictions".into(),
        "check_policy_service inet:127.0.0.1:10045".into(),
    );
    assert_eq!(failed(&diagnose(&p, &tcp, &recipe())), Vec::<&str>::new());
    // Per-recipient webs are decided at RCPT.
    let mut webs = cfg("");
    webs.recipients.push(
        RecipientWeb::parse(
            Path::new("/etc/wotgate/recipients.d/alice@example.org.toml"),
            &format!("combine = \"replace\"\nroots = [\"{ROOT}\"]\n"),
            &webs.trust,
        )
        .unwrap(),
    );
    assert_eq!(
        failed(&diagnose(&good(), &webs, &recipe())),
        ["policy-at-rcpt"]
    );
    let mut p = good();
    p.insert(
        "smtpd_recipient_restrictions".into(),
        format!("permit_mynetworks, reject_unauth_destination, {DATA}"),
    );
    assert_eq!(failed(&diagnose(&p, &webs, &recipe())), Vec::<&str>::new());
}
