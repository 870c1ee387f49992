//! The threads that verify and parse: how many, and mapping a slice on
//! them in order.

use super::VerifyCache;

/// How many threads verify (and parse): every core, at most 16.
pub(super) fn threads(cache: &VerifyCache) -> usize {
    if cache.is_sequential() {
        1
    } else {
        cores()
    }
}

/// The cores this process may use, at most 16; asked once (the standard
/// library reads the cgroup's CPU quota from /proc and /sys on every call:
/// 0.8 ms of each recompute).
pub(in crate::wot) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(16)))
}

/// Maps `items` through `f` on `threads` threads (in order).
pub(in crate::wot) fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.len() < 64 || threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verification thread panicked"))
            .collect()
    })
}
