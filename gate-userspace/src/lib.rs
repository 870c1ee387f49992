//! wotgate: an SMTP gate that admits only IPv6 peers vouched for by an OpenPGP
//! web of trust, enforced by an XDP program. This crate is everything in user space.
//!
//! Layers import downward only (docs/architecture.md): [`model`] and
//! [`source`] → [`wot`], [`statement`], [`plan`] → [`gate`] → [`apply`] →
//! [`daemon`] (the controller, the only module with tokio) → the `wotgate`
//! binary's commands.

/// The compiled XDP object (empty when built without `WOTGATE_BUILD_EBPF=1`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gate-ebpf"));

pub mod apply;
pub mod daemon;
pub mod gate;
pub mod model;
pub mod plan;
pub mod policy;
pub mod source;
pub mod statement;
pub mod webs;
pub mod wot;
