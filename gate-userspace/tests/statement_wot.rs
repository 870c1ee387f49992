//! Acceptance through the real web-of-trust engine (`WotView`): only the
//! domains of User IDs the engine authenticates count, also for refused keys.

mod statement_fixtures;

use sequoia_openpgp::policy::StandardPolicy;
use statement_fixtures::*;
use wotgate::model::prefixes::Verdict;
use wotgate::statement::{Acceptor, Rule, SerialState, SignerTrust, TrustView, WotView};
use wotgate::wot::{evaluate, Keyring, TrustSettings};

/// The cast: beta has two User IDs and the root certifies only the
/// beta.example one; mallory is certified but refused; eve is not certified.
struct Cast {
    root: Key,
    beta: Key,
    mallory: Key,
    eve: Key,
}

/// The cast's keyring evaluated by the engine at T0.
fn view(c: &Cast, policy: &StandardPolicy) -> WotView {
    let certs = vec![
        c.root.public(),
        certify_only(&c.root, &c.beta, |u| u.contains("beta.example")),
        certify(&c.root, &c.mallory),
        c.eve.public(),
    ];
    let mut settings = TrustSettings::new([c.root.fpr()], at(T0));
    settings.refuse.insert(c.mallory.fpr());
    let keyring = Keyring::from_certs(certs);
    let report = evaluate(&keyring, &settings, policy);
    WotView {
        keyring: keyring.into(),
        report,
    }
}

/// The engine's verdicts as acceptance sees them.
fn signer_verdicts(c: &Cast, view: &WotView) {
    assert_eq!(
        view.signer(&c.root.fpr()),
        SignerTrust::Trusted {
            depth: 0,
            domains: vec!["root.example".into()]
        }
    );
    assert_eq!(
        view.signer(&c.beta.fpr()),
        SignerTrust::Trusted {
            depth: 1,
            domains: vec!["beta.example".into()]
        }
    );
    assert_eq!(
        view.signer(&c.mallory.fpr()),
        SignerTrust::Refused {
            would_be_domains: vec!["mallory.example".into()]
        }
    );
    assert!(matches!(
        view.signer(&c.eve.fpr()),
        SignerTrust::Untrusted { .. }
    ));
    assert!(
        matches!(view.signer(&Key::new("<x@y.example>").fpr()), SignerTrust::Untrusted { reason } if reason == "not in the keyring")
    );
}

/// Statements judged through the view.
fn acceptance(c: &Cast, view: &WotView, policy: &StandardPolicy) {
    let rules = test_rules();
    let state = SerialState::default();
    let acc = Acceptor {
        rules: &rules,
        trust: view,
        policy,
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

    assert_eq!(judge(&c.beta, "beta.example").unwrap().depth, Some(1));
    // beta's other.example User ID is self-signed but not authenticated.
    let r = judge(&c.beta, "other.example").unwrap_err();
    assert_eq!(r.rule, Rule::DomainNotAuthenticated, "{r}");
    assert!(r.to_string().contains("it speaks for: beta.example"), "{r}");
    assert_eq!(
        judge(&c.mallory, "mallory.example").unwrap().role,
        Verdict::Deny
    );
    assert_eq!(
        judge(&c.mallory, "beta.example").unwrap_err().rule,
        Rule::RefusedSigner
    );
    assert_eq!(
        judge(&c.eve, "eve.example").unwrap_err().rule,
        Rule::UntrustedSigner
    );
}

#[test]
fn engine_verdicts_become_acceptance_verdicts() {
    let cast = Cast {
        root: Key::new("<postmaster@root.example>"),
        beta: Key::with_userids(&["<postmaster@beta.example>", "<postmaster@other.example>"]),
        mallory: Key::new("mallory.example"),
        eve: Key::new("<eve@eve.example>"),
    };
    let policy = StandardPolicy::new();
    let view = view(&cast, &policy);
    signer_verdicts(&cast, &view);
    acceptance(&cast, &view, &policy);
}
