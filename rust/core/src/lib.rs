//! Pure-Rust core of peakrec. Knows nothing of Python; the bindings in `rust/lib.rs` wrap it.

pub mod bitset;
pub mod eligibility;
pub mod error;
pub mod hashing;
pub mod hnsw;
pub mod kept;
pub mod lists;
pub mod rank;
pub mod text;

pub use error::CoreError;

use rayon::ThreadPool;
use std::sync::{Arc, Mutex};

/// Runs `work` on a rayon pool of `n_threads` threads, or on the global pool when `None`.
/// Results never depend on the thread count.
///
/// Pools are built once per size and kept (the last four sizes built): building one starts its
/// threads, ~300 µs, twenty times the hand-off of a small batch to a kept pool. Concurrent calls
/// asking for the same size share its threads. A forked child has none of its parent's threads,
/// so it builds its own pools.
pub fn with_threads<R: Send>(
    n_threads: Option<usize>,
    work: impl FnOnce() -> R + Send,
) -> Result<R, CoreError> {
    const KEPT: usize = 4;
    // (process id, size, pool).
    static POOLS: Mutex<Vec<(u32, usize, Arc<ThreadPool>)>> = Mutex::new(Vec::new());
    let n = match n_threads {
        None => return Ok(work()),
        Some(0) => return Err(error::invalid("n_threads must be at least 1")),
        Some(n) => n,
    };
    let pid = std::process::id();
    let kept = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|(owner, _, _)| *owner == pid);
        pools
            .iter()
            .find(|(_, size, _)| *size == n)
            .map(|(_, _, pool)| Arc::clone(pool))
    };
    let pool = match kept {
        Some(pool) => pool,
        None => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| error::invalid(format!("cannot start {n} threads: {e}")))?;
            let pool = Arc::new(pool);
            let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
            if pools.len() == KEPT {
                pools.remove(0);
            }
            pools.push((pid, n, Arc::clone(&pool)));
            pool
        }
    };
    Ok(pool.install(work))
}

/// Asks for the cache line at `p` ahead of its use (no effect where there is no prefetch). Any
/// address will do: a prefetch reads nothing and never faults.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint and never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::with_threads;

    #[test]
    fn with_threads_runs_on_a_pool_of_the_size_asked_for_each_time() {
        // More sizes than are kept, twice over, so kept pools are found and evicted ones rebuilt.
        for _ in 0..2 {
            for n in 1..=6 {
                let threads = with_threads(Some(n), rayon::current_num_threads).unwrap();
                assert_eq!(threads, n);
            }
        }
    }

    #[test]
    fn with_threads_refuses_zero_threads() {
        assert!(with_threads(Some(0), || ()).is_err());
    }
}
