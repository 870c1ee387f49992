//! Signed network statements: the body format, the OpenPGP envelope, the
//! acceptance rules and the rollback state (see docs/statement.md).

pub mod accept;
pub mod body;
mod sign;
pub mod signed;
pub mod state;
mod view;
pub mod webs;
mod wot_view;

pub use accept::{AcceptRules, Accepted, Acceptor, Judgement, Rejection, Rule};
pub use body::{Mode, Statement};
pub use state::SerialState;
pub use view::{CertLookup, SignerTrust, TrustView};
pub use webs::{Candidate, Role};
pub use wot_view::WotView;
