//! `wotgate statement show`: a statement's body and claimed signer, without
//! judging the signature or trust (that is `statement verify`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use wotgate::model::time::format_rfc3339;
use wotgate::source::local;
use wotgate::statement::{body::MAX_BODY_BYTES, signed, Statement};

use crate::exit;

/// Print a statement's body and signer without judging trust.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate statement show example.org.asc
  wotgate statement show example.org.asc --json | jq .statement.prefixes")]
pub struct Show {
    /// A signed statement (armoured).
    statement: PathBuf,
    /// Print the issuers and the parsed statement (or why it is malformed) as JSON.
    #[arg(long)]
    json: bool,
}

impl Show {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        // The errors name the file and say what is wrong once.
        let bytes = local::read_bounded(&self.statement, MAX_BODY_BYTES)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .bytes;
        let (body, issuers) = signed::peek(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.statement.display()))?;
        if self.json {
            let parsed = Statement::parse(&body);
            let v = serde_json::json!({
                "file": self.statement.display().to_string(),
                "issuers": issuers,
                "signature_checked": false,
                "statement": parsed.as_ref().ok(),
                "malformed": parsed.as_ref().err().map(|e| e.to_string()),
            });
            outln!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(exit::code(parsed.is_ok()));
        }
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
                println!("# malformed: {e}");
                Ok(exit::code(false))
            }
        }
    }
}
