//! `wotgate statement sign`: the only command that touches secret key
//! material; signs a body into an armoured statement.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::Args;
use sequoia_openpgp::{crypto::Password, parse::Parse, policy::StandardPolicy, Cert};
use wotgate::source::local;
use wotgate::statement::{body::MAX_BODY_BYTES, signed, Statement};

use crate::args::parse_at;

/// Sign a statement body with a secret key: the only command that touches
/// secret key material. Prints the armoured signed statement.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate statement sign --key secret.pgp example.org.body > example.org.asc
  wotgate statement sign --key secret.pgp --password-file pw.txt example.org.body > example.org.asc")]
pub struct Sign {
    /// File holding the secret key (TSK, armoured or binary).
    #[arg(long)]
    key: PathBuf,
    /// Read the key's password from this file (first line) instead of
    /// prompting on the terminal.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Signature creation time: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC), @UNIX-SECONDS, or `now`.
    #[arg(long, default_value = "now", value_parser = parse_at)]
    at: SystemTime,
    /// The statement body (from `wotgate statement new`).
    body: PathBuf,
}

impl Sign {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let at = self.at;
        // Read errors name the file and say what is wrong once (not again
        // as their cause).
        let flat = |e: wotgate::source::ReadError| anyhow::anyhow!("{e}");
        let body = local::read_limited(
            &self.body,
            local::Limit {
                what: "a statement body",
                bytes: MAX_BODY_BYTES as u64,
            },
        )
        .map_err(flat)?
        .bytes;
        Statement::parse(&body).with_context(|| {
            format!("{}: refusing to sign a malformed body", self.body.display())
        })?;
        let key = local::read_limited(&self.key, local::SECRET_KEY_FILE).map_err(flat)?;
        let tsk = Cert::from_bytes(&key.bytes)
            .with_context(|| format!("{}: not an OpenPGP secret key", self.key.display()))?;
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
                let text = local::read_text(f, local::PASSWORD_FILE).map_err(flat)?;
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
