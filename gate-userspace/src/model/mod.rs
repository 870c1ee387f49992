//! The kernel-free model every layer shares: prefix sets, fingerprints, times
//! and the validated settings and configuration. No aya, no tokio, no I/O but reading files named to it.

pub mod config;
pub mod fingerprint;
pub mod prefixes;
pub mod settings;
pub mod time;
