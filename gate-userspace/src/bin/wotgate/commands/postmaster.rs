//! `wotgate postmaster`: the public page that tells the world how to deliver
//! mail to this MX, from the configuration (plain text or HTML).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use wotgate::model::config::Config;
use wotgate::policy::postmaster::Page;

/// Print the acceptable-use page for this MX: IPv6 only, the statement
/// requirement and format, the trust roots, the depth, the TLS policy, a
/// contact.
#[derive(Args)]
#[command(after_help = "Examples:
  wotgate postmaster --config /etc/wotgate/wotgate.toml > /var/www/html/postmaster.txt
  wotgate postmaster --config /etc/wotgate/wotgate.toml --html --contact hostmaster@example.org > /var/www/html/postmaster.html")]
pub struct Postmaster {
    /// The controller's configuration.
    #[arg(long)]
    config: PathBuf,
    /// Print HTML (default: plain text).
    #[arg(long)]
    html: bool,
    /// The MX host name shown (default: `[policy] authserv_id`).
    #[arg(long)]
    host: Option<String>,
    /// Whom to write to (default: postmaster@HOST).
    #[arg(long)]
    contact: Option<String>,
}

impl Postmaster {
    pub fn run(self) -> Result<ExitCode> {
        let cfg = Config::load(&self.config)?;
        let page = Page::from_config(&cfg, self.host.as_deref(), self.contact.as_deref());
        if self.html {
            out!("{}", page.html());
        } else {
            out!("{}", page.text());
        }
        Ok(ExitCode::SUCCESS)
    }
}
