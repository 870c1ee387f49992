//! Benchmark (not a timed test): verify 10,000 signed statements and build a
//! plan of 1,000,000 prefixes; prints a markdown table, `--record` appends it.

#[path = "common/record.rs"]
mod record;
#[path = "common/static_trust.rs"]
mod static_trust;

use std::time::Instant;

use anyhow::Context;
use ipnet::Ipv6Net;
use sequoia_openpgp::{cert::CertBuilder, policy::StandardPolicy, Cert};
use static_trust::StaticTrust;
use wotgate::model::prefixes::Verdict;
use wotgate::model::time::{format_rfc3339, to_system_time};
use wotgate::plan::{Plan, TestingPolicy};
use wotgate::statement::{
    signed, AcceptRules, Accepted, Acceptor, Mode, SerialState, SignerTrust, Statement,
};

const T0: u64 = 1_795_600_800;
const STATEMENTS: usize = 10_000;
const SIGNERS: usize = 100;
const PLAN_PREFIXES: usize = 1_000_000;

fn statement(domain: String, serial: u64, prefixes: Vec<Ipv6Net>) -> Statement {
    Statement {
        domain,
        serial,
        not_before: T0 - 86_400,
        not_after: T0 + 30 * 86_400,
        mode: Mode::Enforce,
        prefixes,
        tls_key_sha256: vec![],
    }
}

fn main() -> anyhow::Result<()> {
    // The machine and its load as the run starts (recorded at the end).
    let _ = record::machine();
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    let record = std::env::args().any(|a| a == "--record");
    let policy = StandardPolicy::new();
    let (view, tsks) = signers()?;
    let mut table = Table::new();

    let t = Instant::now();
    let files = sign_statements(&tsks, &policy)?;
    table.row("sign statements (setup, Ed25519)", STATEMENTS, secs(t));
    let t = Instant::now();
    verify(&view, &policy, &files)?;
    table.row("verify + judge statements", STATEMENTS, secs(t));

    let acc = plan_statements();
    let total: usize = acc.iter().map(|a| a.statement.prefixes.len()).sum();
    let t = Instant::now();
    let plan = Plan::build(&format_rfc3339(T0), &acc, vec![], TestingPolicy::Allow);
    let build_s = secs(t);
    let t = Instant::now();
    let set = plan.to_prefix_set().context("kernel set")?;
    let kernel_s = secs(t);
    let t = Instant::now();
    let text = plan.to_text();
    let text_s = secs(t);
    let distinct = plan.entries.len();
    let what = format!("build plan incl. folding ({total} prefixes, {distinct} distinct)");
    table.row(&what, total, build_s);
    let what = format!(
        "kernel set from the plan ({} entries after folding)",
        set.len()
    );
    table.row(&what, distinct, kernel_s);
    let what = format!("render plan text ({} MB)", text.len() / 1_000_000);
    table.row(&what, distinct, text_s);
    print!("{}", table.0);

    if record {
        record::record(
            "## Statements and plan",
            &format!("`cargo xtask bench plan` (`cargo run --release -p gate-userspace --example bench_plan -- --record`): verify {STATEMENTS} signed statements ({SIGNERS} signers, StandardPolicy), build a plan of {PLAN_PREFIXES} prefixes."),
            &format!("\n### {}; release build\n\n{}", record::machine(), table.0),
        )?;
    }
    Ok(())
}

/// Seconds since `t`.
fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// The markdown table of timings.
struct Table(String);

impl Table {
    fn new() -> Table {
        Table("| step | items | seconds | per item |\n| --- | ---: | ---: | ---: |\n".into())
    }

    /// A row for `step` over `n` items that took `s` seconds.
    fn row(&mut self, step: &str, n: usize, s: f64) {
        self.0.push_str(&format!(
            "| {step} | {n} | {s:.3} | {:.2} µs |\n",
            s * 1e6 / n as f64
        ));
    }
}

/// 100 signer keys (Ed25519), each trusted for its own domain `d<i>.example`.
fn signers() -> anyhow::Result<(StaticTrust, Vec<Cert>)> {
    let mut certs = Vec::new();
    let mut tsks = Vec::new();
    for i in 0..SIGNERS {
        let (tsk, _) = CertBuilder::new()
            .set_creation_time(to_system_time(T0 - 365 * 86_400))
            .add_userid(format!("<postmaster@d{i}.example>"))
            .add_signing_subkey()
            .generate()?;
        certs.push(tsk.clone().strip_secret_key_material());
        tsks.push(tsk);
    }
    let mut view = StaticTrust::new(certs);
    for (i, t) in tsks.iter().enumerate() {
        view.set(
            t.fingerprint(),
            SignerTrust::Trusted {
                depth: i % 3,
                domains: vec![format!("d{i}.example")],
            },
        );
    }
    Ok((view, tsks))
}

/// 10,000 signed statements of 4 prefixes each (100 signers x 100 serials).
fn sign_statements(
    tsks: &[Cert],
    policy: &StandardPolicy,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let at = to_system_time(T0);
    let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(STATEMENTS);
    let keypairs: Vec<_> = tsks
        .iter()
        .map(|k| signed::signing_keypair(k, policy, at, None))
        .collect::<Result<_, _>>()?;
    for n in 0..STATEMENTS {
        let i = n % SIGNERS;
        let prefixes = (0..4u128)
            .map(|j| {
                Ipv6Net::new(
                    (0x2a00_0000u128 << 96 | (n as u128) << 72 | j << 64).into(),
                    64,
                )
                .unwrap()
            })
            .collect();
        let body = statement(format!("d{i}.example"), n as u64, prefixes).to_body();
        files.push((
            format!("s{n:05}.asc"),
            signed::sign(
                body.as_bytes(),
                keypairs[i].clone(),
                to_system_time(T0 - 3600),
            )?,
        ));
    }
    Ok(files)
}

/// Judges every statement; one per domain wins (the highest serial), the
/// rest are superseded.
fn verify(
    view: &StaticTrust,
    policy: &StandardPolicy,
    files: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let rules = AcceptRules::default();
    let state = SerialState::default();
    let acceptor = Acceptor {
        rules: &rules,
        trust: view,
        policy,
        at: to_system_time(T0),
        state: &state,
    };
    let judged = acceptor.judge_all(files.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    let accepted = judged.iter().filter(|j| j.result.is_ok()).count();
    anyhow::ensure!(
        accepted == SIGNERS,
        "expected {SIGNERS} accepted, got {accepted}"
    );
    Ok(())
}

/// 1,000,000 prefixes: 15,625 statements of 64; every 8th statement is a
/// broad /40 that covers the /56s of the next seven, so folding has work.
fn plan_statements() -> Vec<Accepted> {
    let per = 64usize;
    let count = PLAN_PREFIXES / per;
    let mut acc: Vec<Accepted> = Vec::with_capacity(count);
    for s in 0..count {
        // Bits 0..16: 2a00; 16..40: the /40 (64 per group of 8 statements);
        // 40..56: which of the seven covered statements.
        let group = (s / 8) as u128;
        let k = (s % 8) as u128;
        let prefixes: Vec<Ipv6Net> = (0..per as u128)
            .map(|j| {
                let forty = 0x2a00u128 << 112 | (group * per as u128 + j) << 88;
                if k == 0 {
                    Ipv6Net::new(forty.into(), 40).unwrap()
                } else {
                    Ipv6Net::new((forty | k << 72).into(), 56).unwrap()
                }
            })
            .collect();
        acc.push(Accepted {
            file: format!("p{s:06}.asc"),
            statement: statement(format!("p{s}.example"), 1, prefixes),
            signer: format!("{:040X}", s),
            depth: if s % 97 == 0 { None } else { Some(s % 3) },
            role: if s % 97 == 0 {
                Verdict::Deny
            } else {
                Verdict::Allow
            },
            signed_at: T0,
        });
    }
    acc
}
