//! The Postfix policy server (`check_policy_service`): judges every SMTP
//! transaction against the same trust state as the gate, and labels or rejects.
//!
//! Layers: [`request`] (the protocol, bounded), [`trust`] (the snapshot the
//! verdicts read, swapped whole per refresh), [`verdict`] and [`header`]
//! (pure: request + snapshot + time → one action), [`server`] (tokio, UNIX
//! socket and loopback TCP), [`standalone`] (`wotgate policy`, for hosts
//! without XDP). Inside `wotgate run` the daemon publishes each loaded plan.

pub mod counters;
pub mod doctor;
pub mod header;
mod index;
pub mod postmaster;
pub mod recipients;
pub mod request;
pub mod server;
pub mod standalone;
pub mod trust;
pub mod verdict;
pub mod webs;

pub use request::{Limits, Request, RequestError};
pub use server::{Context, Running, ServeError};
pub use trust::{Claim, TrustCell, TrustSnapshot};
pub use verdict::{judge, Reply, VerdictSettings};

use std::sync::Arc;
use std::time::SystemTime;

use crate::apply::Prepared;
use crate::model::config::{check_authserv_id, Config, PolicySection};
use crate::model::prefixes::PrefixSet;

/// This host's name, for the default authserv-id; `localhost` when it has
/// none usable.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if rc == 0 && check_authserv_id(&name).is_ok() {
        name
    } else {
        "localhost".into()
    }
}

impl VerdictSettings {
    /// The verdict's part of `[policy]`; the authserv-id defaults to the host name.
    pub fn from_section(s: &PolicySection) -> VerdictSettings {
        VerdictSettings {
            authserv_id: s.authserv_id.clone().unwrap_or_else(host_name),
            mode: s.mode,
            header_name: s.header_name.clone(),
            max_state_age: s.max_state_age,
            sender_alignment: s.sender_alignment,
            helo_alignment: s.helo_alignment,
            tls_aead: s.tls_aead,
            policy_url: s.policy_url.clone(),
        }
    }
}

/// Binds what `[policy]` names and serves it on the current tokio runtime
/// from a new, empty trust cell (requests defer until the first publish).
pub async fn serve(section: &PolicySection) -> Result<(Arc<TrustCell>, Running), ServeError> {
    let cell = TrustCell::new();
    let ctx = Context::new(
        section,
        VerdictSettings::from_section(section),
        cell.clone(),
    );
    let running = server::start(section, ctx).await?;
    Ok((cell, running))
}

/// The snapshot of a plan that was just loaded, with the configuration's
/// static overrides (read again for their provenance; the refresh that
/// merged them read the same file).
pub fn snapshot_for(cfg: &Config, prepared: &Prepared, at: SystemTime) -> TrustSnapshot {
    let overrides = cfg
        .gate
        .static_prefixes
        .as_deref()
        .and_then(|f| PrefixSet::load(f).ok());
    TrustSnapshot::from_prepared(prepared, overrides.as_ref(), at)
}
