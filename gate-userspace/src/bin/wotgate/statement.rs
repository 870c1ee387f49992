//! `wotgate statement new|sign|verify|show`: how a participant writes and
//! signs a statement, and how anyone checks it against the controller's rules.

use std::{io::Write, path::PathBuf, process::ExitCode, time::SystemTime};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use sequoia_openpgp::{crypto::Password, parse::Parse, policy::StandardPolicy, Cert};
use wotgate::{
    config::{normalise_fingerprint, Config, TrustConfig},
    plan::inputs::trust_view,
    statement::{
        body::{check_domain, normalise_tls_fingerprint},
        signed,
        time::{format_rfc3339, parse_cli_time, parse_duration, to_timestamp},
        AcceptRules, Acceptor, Mode, SerialState, Statement,
    },
    wot::IntroducerMode,
};

/// Write, sign, verify and show signed network statements.
#[derive(Subcommand)]
pub enum StatementCmd {
    New(New),
    Sign(Sign),
    Verify(Verify),
    Show(Show),
}

impl StatementCmd {
    pub fn run(self, _pin_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
        match self {
            StatementCmd::New(c) => c.run(),
            StatementCmd::Sign(c) => c.run(),
            StatementCmd::Verify(c) => c.run(),
            StatementCmd::Show(c) => c.run(),
        }
    }
}

/// Print a new statement body (unsigned) on standard output.
#[derive(Args)]
pub struct New {
    /// The domain the statement speaks for (a User ID of the signing key).
    #[arg(long)]
    domain: String,
    /// An IPv6 prefix the domain's MTAs send from (repeatable).
    #[arg(long = "prefix", required = true)]
    prefixes: Vec<String>,
    /// SHA-256 of an MTA's TLS public key, as Postfix's
    /// ccert_pubkey_fingerprint (repeatable).
    #[arg(long = "tls-key-fingerprint")]
    tls: Vec<String>,
    /// How long the statement is valid, from --not-before (e.g. 90d, 12h).
    #[arg(long, default_value = "90d")]
    valid_for: String,
    /// Start of validity (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, @UNIX, or `now`).
    #[arg(long, default_value = "now")]
    not_before: String,
    /// `testing` or `enforce`.
    #[arg(long, default_value = "enforce")]
    mode: String,
    /// Serial number; defaults to --not-before in seconds since 1970, which
    /// increases with every new statement.
    #[arg(long)]
    serial: Option<u64>,
}

impl New {
    fn run(self) -> anyhow::Result<ExitCode> {
        let domain = self.domain.trim_end_matches('.').to_ascii_lowercase();
        check_domain(&domain)
            .map_err(anyhow::Error::msg)
            .context("--domain")?;
        let nb = to_timestamp(
            parse_cli_time(&self.not_before)
                .map_err(anyhow::Error::msg)
                .context("--not-before")?,
        );
        let valid = parse_duration(&self.valid_for)
            .map_err(anyhow::Error::msg)
            .context("--valid-for")?;
        let mut prefixes = Vec::new();
        for p in &self.prefixes {
            let net = wotgate::gate::prefixes::parse_prefix(p)
                .map_err(anyhow::Error::msg)
                .context("--prefix")?;
            if let Err((_, why)) = wotgate::statement::accept::check_prefix(
                &net,
                &AcceptRules {
                    allow_documentation_prefixes: true,
                    min_prefix_len: 0,
                    ..Default::default()
                },
            ) {
                bail!("--prefix {p}: {why}");
            }
            if !prefixes.contains(&net) {
                prefixes.push(net);
            }
        }
        let tls = self
            .tls
            .iter()
            .map(|f| normalise_tls_fingerprint(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)
            .context("--tls-key-fingerprint")?;
        let st = Statement {
            domain,
            serial: self.serial.unwrap_or(nb),
            not_before: nb,
            not_after: nb
                .checked_add(valid.as_secs())
                .context("--valid-for is too long")?,
            mode: self
                .mode
                .parse::<Mode>()
                .map_err(anyhow::Error::msg)
                .context("--mode")?,
            prefixes,
            tls_key_sha256: tls,
        };
        print!("{}", st.to_body());
        Ok(ExitCode::SUCCESS)
    }
}

/// Sign a statement body with a secret key: the only command that touches
/// secret key material. Prints the armoured signed statement.
#[derive(Args)]
pub struct Sign {
    /// File holding the secret key (TSK, armoured or binary).
    #[arg(long)]
    key: PathBuf,
    /// Read the key's password from this file (first line) instead of
    /// prompting on the terminal.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Signature creation time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, @UNIX, or `now`).
    #[arg(long, default_value = "now")]
    at: String,
    /// The statement body (from `wotgate statement new`).
    body: PathBuf,
}

impl Sign {
    fn run(self) -> anyhow::Result<ExitCode> {
        let at = parse_cli_time(&self.at)
            .map_err(anyhow::Error::msg)
            .context("--at")?;
        let body = read_bounded(&self.body, wotgate::statement::body::MAX_BODY_BYTES)?;
        Statement::parse(&body).with_context(|| {
            format!("{}: refusing to sign a malformed body", self.body.display())
        })?;
        let tsk = Cert::from_file(&self.key)
            .with_context(|| format!("reading secret key {}", self.key.display()))?;
        if !tsk.is_tsk() {
            bail!("{} holds no secret key material", self.key.display());
        }
        let policy = StandardPolicy::new();
        let needs_password = tsk
            .keys()
            .secret()
            .any(|k| !k.key().has_unencrypted_secret());
        let password: Option<Password> = match (&self.password_file, needs_password) {
            (_, false) => None,
            (Some(f), true) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading password file {}", f.display()))?;
                Some(text.lines().next().unwrap_or("").into())
            }
            (None, true) => Some(
                rpassword::prompt_password(format!("Password for {}: ", tsk.fingerprint()))
                    .context("reading the password from the terminal (or use --password-file)")?
                    .into(),
            ),
        };
        let keypair = signed::signing_keypair(&tsk, &policy, at, password.as_ref())?;
        let out = signed::sign(&body, keypair, at)?;
        std::io::stdout().write_all(&out)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Check statements with the controller's acceptance rules and explain
/// every verdict. Exits 0 only when every statement is accepted.
#[derive(Args)]
pub struct Verify {
    /// Signed statements (armoured).
    #[arg(required = true)]
    statements: Vec<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Where trust comes from: a controller configuration, or options.
#[derive(Args)]
pub struct TrustArgs {
    /// The controller's configuration (trust settings, prefix rules, state).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Keyring file (repeatable); used without --config.
    #[arg(long = "keyring")]
    keyrings: Vec<PathBuf>,
    /// Root fingerprint (repeatable); used without --config.
    #[arg(long = "root")]
    roots: Vec<String>,
    /// Refused key fingerprint (repeatable).
    #[arg(long = "refuse")]
    refuse: Vec<String>,
    /// A key whose certifications do not count (repeatable).
    #[arg(long = "ignore-certifications-by")]
    ignore_certifications_by: Vec<String>,
    /// Longest chain of certifications from a root.
    #[arg(long, default_value_t = wotgate::wot::DEFAULT_DEPTH)]
    depth: usize,
    /// Only trust signatures delegate (mode trust-signatures); by default
    /// every valid certification by a trusted key introduces.
    #[arg(long)]
    trust_signatures: bool,
    /// Accept documentation prefixes (2001:db8::/32, 3fff::/20).
    #[arg(long)]
    allow_documentation_prefixes: bool,
    /// State directory with the last accepted serials (rollback check).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Reference time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, @UNIX, or `now`).
    #[arg(long, default_value = "now")]
    pub at: String,
}

impl TrustArgs {
    /// The configuration these options describe.
    pub fn config(&self) -> anyhow::Result<Config> {
        if let Some(c) = &self.config {
            return Ok(Config::load(c)?);
        }
        if self.keyrings.is_empty() || self.roots.is_empty() {
            bail!("give --config FILE, or at least one --keyring and one --root");
        }
        let fprs = |v: &[String], what: &str| -> anyhow::Result<Vec<String>> {
            v.iter()
                .map(|f| normalise_fingerprint(f).map_err(|e| anyhow::anyhow!("{what} {f}: {e}")))
                .collect()
        };
        Ok(Config {
            state_directory: self.state_dir.clone().unwrap_or_default(),
            trust: TrustConfig {
                keyrings: self.keyrings.clone(),
                roots: fprs(&self.roots, "--root")?,
                depth: self.depth,
                mode: if self.trust_signatures {
                    IntroducerMode::TrustSignatures
                } else {
                    IntroducerMode::Certifications
                },
                limits: Default::default(),
                refuse: fprs(&self.refuse, "--refuse")?,
                ignore_certifications_by: fprs(
                    &self.ignore_certifications_by,
                    "--ignore-certifications-by",
                )?,
            },
            statements_directory: PathBuf::new(),
            rules: AcceptRules {
                allow_documentation_prefixes: self.allow_documentation_prefixes,
                ..Default::default()
            },
            testing: Default::default(),
        })
    }

    pub fn at(&self) -> anyhow::Result<SystemTime> {
        parse_cli_time(&self.at)
            .map_err(anyhow::Error::msg)
            .context("--at")
    }
}

impl Verify {
    fn run(self) -> anyhow::Result<ExitCode> {
        let cfg = self.trust.config()?;
        let at = self.trust.at()?;
        let policy = StandardPolicy::new();
        let (view, warnings) = trust_view(&cfg.trust, &policy, at)?;
        for w in &warnings {
            eprintln!("wotgate: warning: {w}");
        }
        let state = if cfg.state_directory.as_os_str().is_empty() {
            SerialState::default()
        } else {
            SerialState::load(&cfg.state_directory)?
        };
        let acceptor = Acceptor {
            rules: &cfg.rules,
            trust: &view,
            policy: &policy,
            at,
            state: &state,
        };
        let mut all_ok = true;
        for path in &self.statements {
            let bytes = read_bounded(path, cfg.rules.max_size)?;
            let j = acceptor.judge(&path.display().to_string(), &bytes);
            for line in &j.explanation {
                println!("{}: ok: {line}", j.file);
            }
            match &j.result {
                Ok(a) => println!(
                    "{}: {}: ACCEPTED to {} {} prefixes",
                    j.file,
                    a.statement.domain,
                    match a.role {
                        wotgate::statement::Role::Allow => "allow",
                        wotgate::statement::Role::Deny => "deny",
                    },
                    a.statement.prefixes.len()
                ),
                Err(r) => {
                    all_ok = false;
                    println!("{r}");
                }
            }
        }
        Ok(if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        })
    }
}

/// Print a statement's body and signer without judging trust.
#[derive(Args)]
pub struct Show {
    /// A signed statement (armoured).
    statement: PathBuf,
}

impl Show {
    fn run(self) -> anyhow::Result<ExitCode> {
        let bytes = read_bounded(&self.statement, wotgate::statement::body::MAX_BODY_BYTES)?;
        let (body, issuers) =
            signed::peek(&bytes).with_context(|| self.statement.display().to_string())?;
        println!(
            "# signed by issuer {} (signature NOT checked: use `wotgate statement verify`)",
            issuers.join(", ")
        );
        match Statement::parse(&body) {
            Ok(st) => {
                print!("{}", st.to_body());
                println!(
                    "# valid {} .. {}",
                    format_rfc3339(st.not_before),
                    format_rfc3339(st.not_after)
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("# malformed body: {e}");
                Ok(ExitCode::from(2))
            }
        }
    }
}

/// Reads at most `max + 1` bytes of a file.
pub fn read_bounded(path: &std::path::Path, max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut buf))
        .with_context(|| format!("reading {}", path.display()))?;
    // One byte past `max` is kept so the acceptance rules can name an
    // oversized statement (rule oversized) without reading all of it.
    Ok(buf)
}
