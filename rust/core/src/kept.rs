//! Retrieval over kept eligible-row sets: the rows a request may see are known before it starts
//! (the region's rows and the items live now, kept as bitsets and updated as item state changes),
//! so a request with few of them scans just those rows exactly instead of all items.

use crate::eligibility::Eligibility;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How many rows both `a` and `b` hold (bitset words of the same length).
pub fn and_count(a: &[u64], b: &[u64]) -> usize {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x & y).count_ones() as usize)
        .sum()
}

/// Rows collected before their checks start; the prefetch distance within them.
const BATCH: usize = 256;
const PREFETCH_AHEAD: usize = 6;

/// Word `w` of the intersection of `kept` (updated in place by other threads: atomic loads) and
/// `also` (every row when `None`).
#[inline]
pub fn and_words<'a>(kept: &'a [AtomicU64], also: Option<&'a [u64]>) -> impl Fn(usize) -> u64 + 'a {
    move |w| kept[w].load(Relaxed) & also.map_or(!0, |a| a[w])
}

/// Inner product of two equally long vectors, eight lanes at a time (auto-vectorised).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// A result in the top-k heap, ordered so that the worst (lowest score, then highest row) is
/// the heap's maximum.
#[derive(Clone, Copy, PartialEq)]
struct Hit {
    score: f32,
    row: usize,
}

impl Eq for Hit {}

impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.row.cmp(&other.row))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Exact top `k` by inner product with `query` among the rows of the bitset whose word `w` (of
/// `words`) is `word(w)` that `rules` admits, best first, ties by row. `word` is a function so
/// that a set another thread updates is read through atomics, and two sets can be and-ed on the
/// fly (see [`and_words`]).
///
/// `vectors` is `[n * dim]` row-major. Only the kept rows are read: the words are walked in order
/// (64 rows a load), each set bit is checked against the request's rules and scored.
pub fn scan(
    vectors: &[f32],
    dim: usize,
    words: usize,
    word: impl Fn(usize) -> u64,
    rules: &Eligibility<'_>,
    query: &[f32],
    k: usize,
) -> (Vec<i64>, Vec<f32>) {
    let n = rules.len().min(vectors.len() / dim.max(1));
    let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
    if k == 0 || dim == 0 || query.len() != dim {
        return (Vec::new(), Vec::new());
    }
    // Rows are taken a batch at a time so that each row's lines (its vector, live state and
    // record) are asked for a few rows ahead of its check: the kept rows are scattered, and
    // each is otherwise a chain of cache misses.
    let mut batch: Vec<usize> = Vec::with_capacity(BATCH + 64);
    let mut flush = |batch: &mut Vec<usize>| {
        for (i, &row) in batch.iter().enumerate() {
            if let Some(&ahead) = batch.get(i + PREFETCH_AHEAD) {
                rules.prefetch(ahead);
                let v = vectors[ahead * dim..].as_ptr();
                for line in (0..dim).step_by(16) {
                    crate::prefetch(v.wrapping_add(line));
                }
            }
            if !rules.contains(row as i64) {
                continue;
            }
            let score = dot(&vectors[row * dim..(row + 1) * dim], query);
            let hit = Hit { score, row };
            if heap.len() < k {
                heap.push(hit);
            } else if heap.peek().is_some_and(|worst| hit < *worst) {
                heap.pop();
                heap.push(hit);
            }
        }
        batch.clear();
    };
    for w in 0..words {
        let mut bits = word(w);
        while bits != 0 {
            let row = (w << 6) + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if row < n {
                batch.push(row);
            }
        }
        if batch.len() >= BATCH {
            flush(&mut batch);
        }
    }
    flush(&mut batch);
    let hits = heap.into_sorted_vec();
    (
        hits.iter().map(|h| h.row as i64).collect(),
        hits.iter().map(|h| h.score).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitset::Bitset;
    use crate::eligibility::{ItemColumns, LiveState, Rules};
    use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU8};

    struct World {
        brand: Vec<i32>,
        zeros32: Vec<i32>,
        regions: Vec<u64>,
        zeros64: Vec<i64>,
        zeros8: Vec<u8>,
        stock: Vec<AtomicI32>,
        price: Vec<AtomicU32>,
        available: Vec<AtomicU8>,
    }

    fn world(n: usize) -> World {
        World {
            brand: (0..n as i32).map(|i| i % 3).collect(),
            zeros32: vec![0; n],
            regions: vec![!0; n],
            zeros64: vec![0; n],
            zeros8: vec![0; n],
            stock: (0..n).map(|_| AtomicI32::new(1)).collect(),
            price: (0..n).map(|_| AtomicU32::new(1f32.to_bits())).collect(),
            available: (0..n).map(|_| AtomicU8::new(1)).collect(),
        }
    }

    fn rules<'a>(w: &'a World, brand_ok: Option<&'a [u8]>, excluded: &'a [i64]) -> Eligibility<'a> {
        let items = ItemColumns {
            brand: &w.brand,
            category: &w.zeros32,
            regions: &w.regions,
            region_words: 1,
            launch_ts: &w.zeros64,
            presale_start: &w.zeros64,
            presale_end: &w.zeros64,
            member_only: &w.zeros8,
            packed: None,
        };
        let live = LiveState {
            stock: &w.stock,
            price: &w.price,
            available: &w.available,
        };
        let r = Rules {
            region: 0,
            now: 1,
            price_min: f32::MIN,
            price_max: f32::MAX,
            brand_ok,
            category_ok: None,
            member_brands: None,
            excluded,
        };
        Eligibility::new(items, live, r).unwrap()
    }

    /// Brute force: score every row in `set` that `e` admits, best first, ties by row.
    fn brute(
        vectors: &[f32],
        dim: usize,
        set: &Bitset,
        e: &Eligibility,
        q: &[f32],
        k: usize,
    ) -> Vec<i64> {
        let mut all: Vec<(f32, i64)> = set
            .rows()
            .into_iter()
            .filter(|&r| e.contains(r))
            .map(|r| {
                let v = &vectors[r as usize * dim..(r as usize + 1) * dim];
                (v.iter().zip(q).map(|(a, b)| a * b).sum(), r)
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.into_iter().take(k).map(|(_, r)| r).collect()
    }

    fn atomic(words: &[u64]) -> Vec<AtomicU64> {
        words.iter().map(|&w| AtomicU64::new(w)).collect()
    }

    fn vectors(n: usize, dim: usize) -> Vec<f32> {
        // deterministic, distinct values
        (0..n * dim)
            .map(|i| ((i * 7919 % 1009) as f32 / 1009.0) - 0.5)
            .collect()
    }

    #[test]
    fn scan_equals_brute_force_over_the_kept_rows() {
        let (n, dim) = (1000, 19);
        let w = world(n);
        let v = vectors(n, dim);
        let q: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut set = Bitset::new(n);
        for row in (0..n).filter(|r| r % 7 == 0 || r % 11 == 0) {
            set.insert(row);
        }
        let kept = &set;
        let e = rules(&w, None, &[]);
        let kept = atomic(kept.words());
        let (rows, scores) = scan(&v, dim, kept.len(), and_words(&kept, None), &e, &q, 25);
        assert_eq!(rows, brute(&v, dim, &set, &e, &q, 25));
        assert!(scores.windows(2).all(|s| s[0] >= s[1]));
    }

    #[test]
    fn scan_applies_the_request_rules_and_the_second_set() {
        let (n, dim) = (700, 8);
        let w = world(n);
        let v = vectors(n, dim);
        let q = vec![1.0, -0.5, 0.25, 0.0, 0.3, -0.2, 0.9, 0.1];
        let mut kept = Bitset::new(n);
        let mut also = Bitset::new(n);
        for row in 0..n {
            if row % 2 == 0 {
                kept.insert(row);
            }
            if row % 3 != 0 {
                also.insert(row);
            }
        }
        w.stock[10].store(0, std::sync::atomic::Ordering::Relaxed); // out of stock now
        let brand_ok = [1u8, 0, 1];
        let excluded = [4i64, 8];
        let e = rules(&w, Some(&brand_ok), &excluded);
        let live = atomic(kept.words());
        let (rows, _) = scan(
            &v,
            dim,
            live.len(),
            and_words(&live, Some(also.words())),
            &e,
            &q,
            40,
        );
        let mut both = Bitset::new(n);
        for row in 0..n {
            if kept.contains(row) && also.contains(row) {
                both.insert(row);
            }
        }
        assert_eq!(rows, brute(&v, dim, &both, &e, &q, 40));
        assert!(rows.iter().all(|&r| r % 2 == 0 && r % 3 != 0 && r % 3 != 1));
        assert!(!rows.contains(&10) && !rows.contains(&4) && !rows.contains(&8));
    }

    #[test]
    fn scan_returns_every_admitted_row_when_fewer_than_k() {
        let w = world(100);
        let v = vectors(100, 4);
        let mut kept = Bitset::new(100);
        kept.insert(3);
        kept.insert(99);
        let e = rules(&w, None, &[]);
        let live = atomic(kept.words());
        let (rows, _) = scan(&v, 4, 2, and_words(&live, None), &e, &[1.0; 4], 100);
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn and_count_counts_the_intersection() {
        assert_eq!(and_count(&[0b1011, !0], &[0b0110, 1]), 2);
        assert_eq!(and_count(&[], &[]), 0);
    }

    #[test]
    fn dot_matches_the_plain_sum_for_any_length() {
        for dim in [1, 7, 8, 9, 64, 65] {
            let a: Vec<f32> = (0..dim).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..dim).map(|i| 1.0 - i as f32 * 0.1).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() <= 1e-3 * plain.abs().max(1.0));
        }
    }
}
