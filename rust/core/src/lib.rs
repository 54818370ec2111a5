//! Pure-Rust core of peakrec. Knows nothing of Python; the bindings in `rust/lib.rs` wrap it.

pub mod bitset;
pub mod eligibility;
pub mod error;
pub mod hashing;
pub mod hnsw;
pub mod rank;
pub mod text;

pub use error::CoreError;

/// Runs `work` on a rayon pool of `n_threads` threads, or on the global pool when `None`.
/// Results never depend on the thread count.
pub fn with_threads<R: Send>(
    n_threads: Option<usize>,
    work: impl FnOnce() -> R + Send,
) -> Result<R, CoreError> {
    match n_threads {
        None => Ok(work()),
        Some(0) => Err(error::invalid("n_threads must be at least 1")),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|pool| pool.install(work))
            .map_err(|e| error::invalid(format!("cannot start {n} threads: {e}"))),
    }
}

/// Asks for the cache line at `p` ahead of its use (no effect where there is no prefetch).
#[inline(always)]
pub(crate) fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint and never faults; `p` is a valid reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
