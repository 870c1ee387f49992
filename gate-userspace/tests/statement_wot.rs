//! Acceptance through the real web-of-trust engine (`WotView`): only the
//! domains of User IDs the engine authenticates count, also for refused keys.

mod statement_fixtures;

use sequoia_openpgp::policy::StandardPolicy;
use statement_fixtures::*;
use wotgate::model::prefixes::Verdict;
use wotgate::statement::{Acceptor, Rule, SerialState, SignerTrust, TrustView, WotView};
use wotgate::wot::{evaluate, Keyring, TrustSettings};

#[test]
fn engine_verdicts_become_acceptance_verdicts() {
    let root = Key::new("<postmaster@root.example>");
    // beta has two User IDs; the root certifies only the beta.example one.
    let beta = Key::with_userids(&["<postmaster@beta.example>", "<postmaster@other.example>"]);
    let mallory = Key::new("mallory.example");
    let eve = Key::new("<eve@eve.example>");
    let certs = vec![
        root.public(),
        certify_only(&root, &beta, |u| u.contains("beta.example")),
        certify(&root, &mallory),
        eve.public(),
    ];
    let mut settings = TrustSettings::new([root.fpr()], at(T0));
    settings.refuse.insert(mallory.fpr());
    let keyring = Keyring::from_certs(certs);
    let policy = StandardPolicy::new();
    let report = evaluate(&keyring, &settings, &policy);
    let view = WotView { keyring, report };

    assert_eq!(
        view.signer(&root.fpr()),
        SignerTrust::Trusted {
            depth: 0,
            domains: vec!["root.example".into()]
        }
    );
    assert_eq!(
        view.signer(&beta.fpr()),
        SignerTrust::Trusted {
            depth: 1,
            domains: vec!["beta.example".into()]
        }
    );
    assert_eq!(
        view.signer(&mallory.fpr()),
        SignerTrust::Refused {
            would_be_domains: vec!["mallory.example".into()]
        }
    );
    assert!(matches!(
        view.signer(&eve.fpr()),
        SignerTrust::Untrusted { .. }
    ));
    assert!(
        matches!(view.signer(&Key::new("<x@y.example>").fpr()), SignerTrust::Untrusted { reason } if reason == "not in the keyring")
    );

    let rules = test_rules();
    let state = SerialState::default();
    let acc = Acceptor {
        rules: &rules,
        trust: &view,
        policy: &policy,
        at: at(T0),
        state: &state,
    };
    let judge = |k: &Key, domain: &str| {
        acc.judge(
            "s.asc",
            &k.sign(&statement(domain, 1, &["2001:db8:1::/48"])),
        )
        .result
    };

    assert_eq!(judge(&beta, "beta.example").unwrap().depth, Some(1));
    // beta's other.example User ID is self-signed but not authenticated.
    let r = judge(&beta, "other.example").unwrap_err();
    assert_eq!(r.rule, Rule::DomainNotAuthenticated, "{r}");
    assert!(r.to_string().contains("it speaks for: beta.example"), "{r}");
    assert_eq!(
        judge(&mallory, "mallory.example").unwrap().role,
        Verdict::Deny
    );
    assert_eq!(
        judge(&mallory, "beta.example").unwrap_err().rule,
        Rule::RefusedSigner
    );
    assert_eq!(
        judge(&eve, "eve.example").unwrap_err().rule,
        Rule::UntrustedSigner
    );
}
