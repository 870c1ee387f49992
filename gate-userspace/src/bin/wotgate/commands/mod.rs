//! One file per command; each parses its flags (clap derive, doc comments as
//! help, examples after) and calls the library. Nothing here decides anything.

pub mod attach;
pub mod check;
pub mod config_check;
pub mod detach;
pub mod doctor;
pub mod generate;
pub mod inspect;
pub mod plan;
pub mod policy;
pub mod postmaster;
pub mod prefixes;
pub mod purge;
pub mod reload;
pub mod replay;
pub mod run;
pub mod statement_new;
pub mod statement_show;
pub mod statement_sign;
pub mod statement_verify;
pub mod status;
pub mod trust_explain;
pub mod trust_list;
mod trust_report;
pub mod upgrade;
