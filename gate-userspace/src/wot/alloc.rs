//! One allocator arena for the whole process (glibc), so certificates parsed
//! and kept while worker threads verify do not fragment per-thread arenas.
//!
//! glibc gives each thread an arena of its own; the trust computation's
//! workers (parsing, verification) allocate there, and what outlives them is
//! scattered among arenas that are never given back. Measured on the 10k
//! network: the daemon's engine process 380 -> 243 MiB peak RSS, the full
//! computation 205 -> 196 MiB; time unchanged within noise (the workers
//! spend their time in cryptography, not in malloc). Another global
//! allocator (mimalloc, jemalloc) would need a C-built dependency and was
//! not measured.

/// Limits glibc to one arena; call first thing in `main`. A no-op elsewhere.
pub fn single_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
