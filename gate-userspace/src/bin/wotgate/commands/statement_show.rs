//! `wotgate statement show`: a statement's body and claimed signer, without
//! judging the signature or trust (that is `statement verify`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use wotgate::model::time::format_rfc3339;
use wotgate::statement::{body::MAX_BODY_BYTES, signed, Statement};

use super::read_bounded;
use crate::exit;

/// Print a statement's body and signer without judging trust.
#[derive(Args)]
#[command(after_help = "Example:
  wotgate statement show example.org.asc")]
pub struct Show {
    /// A signed statement (armoured).
    statement: PathBuf,
}

impl Show {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let bytes = read_bounded(&self.statement, MAX_BODY_BYTES)?.bytes;
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
                Ok(exit::code(false))
            }
        }
    }
}
