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
const PREFETCH_AHEAD: usize = 12;

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

/// The vectors a search scores, row-major `[rows * dim]`: full precision, and optionally the
/// same in half precision (IEEE f16 bits), then read instead: half the memory a row. The rows a
/// search keeps are re-scored in full precision.
#[derive(Clone, Copy)]
pub struct Vectors<'a> {
    pub full: &'a [f32],
    pub half: Option<&'a [u16]>,
    pub dim: usize,
}

impl Vectors<'_> {
    /// The number of rows (of both copies; `check` makes sure they agree).
    pub fn rows(&self) -> usize {
        self.full.len() / self.dim.max(1)
    }

    pub fn check(&self) -> crate::error::Result<()> {
        if self.half.is_some_and(|h| h.len() != self.full.len()) {
            return Err(crate::error::invalid(
                "half-precision vectors do not match the vectors",
            ));
        }
        Ok(())
    }
}

/// The best `k` rows by inner product with a query among rows offered in any order that the
/// request's rules admit. A row is scored first and checked against the rules only when its
/// score would enter the top `k`: past the first rows few do, so most offered rows cost a read
/// of their vector and nothing more (their records and live state, scattered lines, are never
/// read). Rows are taken a batch at a time so that each row's vector is asked for a few rows
/// ahead of its score.
pub struct TopK<'a> {
    vectors: Vectors<'a>,
    rules: &'a Eligibility<'a>,
    query: &'a [f32],
    k: usize,
    /// The heap's size: `k`, and a few more when scoring in half precision, whose order the
    /// full-precision scores may change at the edge.
    keep: usize,
    half_dot: fn(&[f32], &[u16]) -> f32,
    heap: BinaryHeap<Hit>,
    batch: Vec<usize>,
    /// The rows of a batch whose scores would enter the top, to be checked.
    entering: Vec<Hit>,
    /// Rows offered and scored so far.
    pub scored: usize,
    /// Rows checked against the rules so far, and how many of them the rules admitted.
    pub checked: usize,
    pub admitted: usize,
}

impl<'a> TopK<'a> {
    /// `vectors` has the rows offered (checked with [`Vectors::check`]); `query` `dim` values.
    pub fn new(
        vectors: Vectors<'a>,
        rules: &'a Eligibility<'a>,
        query: &'a [f32],
        k: usize,
    ) -> Self {
        let keep = if vectors.half.is_some() {
            k + k / 8 + 4
        } else {
            k
        };
        TopK {
            vectors,
            rules,
            query,
            k,
            keep,
            half_dot: half_dot_fn(),
            heap: BinaryHeap::with_capacity(keep + 1),
            batch: Vec::with_capacity(BATCH),
            entering: Vec::with_capacity(BATCH),
            scored: 0,
            checked: 0,
            admitted: 0,
        }
    }

    /// Offers `row` (below the catalogue's and the vectors' row count); it is scored, and checked
    /// if need be, with its batch.
    #[inline]
    pub fn offer(&mut self, row: usize) {
        self.batch.push(row);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Rows offered and not yet scored.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// The estimated number of offered rows the rules admit: those scored, times the share
    /// admitted among those checked (all of them until one is checked).
    pub fn admitted_estimate(&self) -> usize {
        if self.checked == 0 {
            return self.scored;
        }
        (self.scored as u64 * self.admitted as u64 / self.checked as u64) as usize
    }

    /// Scores (and checks) the rows offered so far: first every row's score, keeping those that
    /// beat the worst kept so far; then those few are checked against the rules, their lines
    /// asked for a few rows ahead (each check is otherwise a chain of misses: live state, record).
    pub fn flush(&mut self) {
        let Vectors { full, half, dim } = self.vectors;
        let worst = (self.heap.len() >= self.keep).then(|| *self.heap.peek().expect("a full heap"));
        self.entering.clear();
        for i in 0..self.batch.len() {
            let row = self.batch[i];
            if let Some(&ahead) = self.batch.get(i + PREFETCH_AHEAD) {
                match half {
                    Some(h) => prefetch_lines(&h[ahead * dim..(ahead + 1) * dim]),
                    None => prefetch_lines(&full[ahead * dim..(ahead + 1) * dim]),
                }
            }
            let score = match half {
                Some(h) => (self.half_dot)(self.query, &h[row * dim..(row + 1) * dim]),
                None => dot(&full[row * dim..(row + 1) * dim], self.query),
            };
            let hit = Hit { score, row };
            if worst.is_none_or(|w| hit < w) {
                self.entering.push(hit);
            }
        }
        self.scored += self.batch.len();
        self.batch.clear();
        for i in 0..self.entering.len() {
            if let Some(ahead) = self.entering.get(i + PREFETCH_AHEAD) {
                self.rules.prefetch(ahead.row);
            }
            let hit = self.entering[i];
            if self.heap.len() == self.keep && self.heap.peek().is_some_and(|w| hit >= *w) {
                continue; // overtaken within the batch
            }
            self.checked += 1;
            if !self.rules.contains(hit.row as i64) {
                continue;
            }
            self.admitted += 1;
            if self.heap.len() == self.keep {
                self.heap.pop();
            }
            self.heap.push(hit);
        }
    }

    /// `(rows, scores)`, best first, ties by row; scores in full precision.
    pub fn finish(mut self) -> (Vec<i64>, Vec<f32>) {
        self.flush();
        let mut hits = self.heap.into_vec();
        if self.vectors.half.is_some() {
            let (full, dim) = (self.vectors.full, self.vectors.dim);
            for hit in &mut hits {
                hit.score = dot(&full[hit.row * dim..(hit.row + 1) * dim], self.query);
            }
        }
        hits.sort_unstable(); // best first (the heap's order)
        hits.truncate(self.k);
        (
            hits.iter().map(|h| h.row as i64).collect(),
            hits.iter().map(|h| h.score).collect(),
        )
    }
}

/// Asks for every cache line of `values` (a hint).
#[inline]
fn prefetch_lines<T>(values: &[T]) {
    let step = (64 / std::mem::size_of::<T>()).max(1);
    for i in (0..values.len()).step_by(step) {
        crate::prefetch(&values[i]);
    }
}

/// `a · b` for `b` in half precision: eight lanes at a time through F16C when the CPU has AVX2,
/// FMA and F16C and the length is a multiple of 8, else one value at a time.
fn half_dot_fn() -> fn(&[f32], &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
    {
        return half_dot_simd;
    }
    crate::hnsw::half_distance::<false, false>
}

#[cfg(target_arch = "x86_64")]
fn half_dot_simd(a: &[f32], b: &[u16]) -> f32 {
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn inner(a: &[f32], b: &[u16]) -> f32 {
        crate::hnsw::half_distance::<true, false>(a, b)
    }
    // SAFETY: `half_dot_fn` hands out this function only once the CPU was checked for AVX2, FMA
    // and F16C.
    unsafe { inner(a, b) }
}

/// Exact top `k` by inner product with `query` among the rows of the bitset whose word `w` (of
/// `words`) is `word(w)` that `rules` admits, best first, ties by row. `word` is a function so
/// that a set another thread updates is read through atomics, and two sets can be and-ed on the
/// fly (see [`and_words`]).
///
/// Only the kept rows are read: the words are walked in order (64 rows a load), and each set
/// bit's row is scored (and checked, see [`TopK`]). `summary`, when given, has bit `w` set for
/// every word `w` of the set that may hold a row (see [`summary_bit`]): only those words are read,
/// so a sparse set costs its rows, not `n / 64` words.
pub fn scan(
    vectors: Vectors<'_>,
    words: usize,
    word: impl Fn(usize) -> u64,
    summary: Option<&[AtomicU64]>,
    rules: &Eligibility<'_>,
    query: &[f32],
    k: usize,
) -> (Vec<i64>, Vec<f32>) {
    let n = rules.len().min(vectors.rows());
    if k == 0 || vectors.dim == 0 || query.len() != vectors.dim || vectors.check().is_err() {
        return (Vec::new(), Vec::new());
    }
    let words = words.min(n.div_ceil(64));
    let mut top = TopK::new(vectors, rules, query, k);
    let mut visit = |w: usize| {
        let mut bits = word(w);
        while bits != 0 {
            let row = (w << 6) + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if row < n {
                top.offer(row);
            }
        }
    };
    match summary {
        None => (0..words).for_each(&mut visit),
        Some(summary) => {
            for (s, bits) in summary.iter().enumerate() {
                let mut bits = bits.load(Relaxed);
                while bits != 0 {
                    let w = (s << 6) + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if w < words {
                        visit(w);
                    }
                }
            }
        }
    }
    top.finish()
}

/// The summary word and bit of bitset word `w`: a summary has one bit per word of the set.
pub fn summary_bit(w: usize) -> (usize, u64) {
    (w >> 6, 1 << (w & 63))
}

/// A catalogue for tests: every row in stock, on sale, sold in region 0, launched; brand `i % 3`,
/// price `i`.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::eligibility::{Eligibility, ItemColumns, LiveState, Rules};
    use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU8};

    pub(crate) struct World {
        brand: Vec<i32>,
        zeros32: Vec<i32>,
        regions: Vec<u64>,
        zeros64: Vec<i64>,
        zeros8: Vec<u8>,
        pub(crate) stock: Vec<AtomicI32>,
        price: Vec<AtomicU32>,
        available: Vec<AtomicU8>,
    }

    pub(crate) fn world(n: usize) -> World {
        World {
            brand: (0..n as i32).map(|i| i % 3).collect(),
            zeros32: vec![0; n],
            regions: vec![!0; n],
            zeros64: vec![0; n],
            zeros8: vec![0; n],
            stock: (0..n).map(|_| AtomicI32::new(1)).collect(),
            price: (0..n)
                .map(|i| AtomicU32::new((i as f32).to_bits()))
                .collect(),
            available: (0..n).map(|_| AtomicU8::new(1)).collect(),
        }
    }

    /// The rules of a request in region 0 with these brands allowed, rows excluded and price cap.
    pub(crate) fn rules<'a>(
        w: &'a World,
        brand_ok: Option<&'a [u8]>,
        excluded: &'a [i64],
        price_max: f32,
    ) -> Eligibility<'a> {
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
            price_max,
            brand_ok,
            category_ok: None,
            member_brands: None,
            excluded,
        };
        Eligibility::new(items, live, r).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{rules, world};
    use super::*;
    use crate::bitset::Bitset;

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

    fn full(v: &[f32], dim: usize) -> Vectors<'_> {
        Vectors {
            full: v,
            half: None,
            dim,
        }
    }

    #[test]
    fn scan_in_half_precision_keeps_the_exact_top_with_full_scores() {
        let (n, dim) = (3000, 16);
        let w = world(n);
        let v = vectors(n, dim);
        let half: Vec<u16> = v.iter().map(|&x| to_half(x)).collect();
        let q: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.61).cos()).collect();
        let mut set = Bitset::new(n);
        for row in (0..n).filter(|r| r % 3 != 0) {
            set.insert(row);
        }
        let e = rules(&w, None, &[], f32::MAX);
        let kept = atomic(set.words());
        let halved = Vectors {
            full: &v,
            half: Some(&half),
            dim,
        };
        let (rows, scores) = scan(halved, kept.len(), and_words(&kept, None), None, &e, &q, 50);
        let exact = brute(&v, dim, &set, &e, &q, 50);
        let common = rows.iter().filter(|r| exact.contains(r)).count();
        assert!(common >= 49, "{common} of 50 in common with brute force");
        for (&row, &score) in rows.iter().zip(&scores) {
            let full_score = dot(&v[row as usize * dim..(row as usize + 1) * dim], &q);
            assert_eq!(score, full_score, "row {row} re-scored in full precision");
        }
    }

    /// The IEEE half-precision bits nearest `x` (round to nearest even; normal range only).
    fn to_half(x: f32) -> u16 {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
        if x == 0.0 || exp <= 0 {
            return sign;
        }
        let mant = bits & 0x7f_ffff;
        let mut half = ((exp as u32) << 10) | (mant >> 13);
        let rest = mant & 0x1fff;
        if rest > 0x1000 || (rest == 0x1000 && half & 1 == 1) {
            half += 1;
        }
        sign | half as u16
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
        let e = rules(&w, None, &[], f32::MAX);
        let kept = atomic(kept.words());
        let (rows, scores) = scan(
            full(&v, dim),
            kept.len(),
            and_words(&kept, None),
            None,
            &e,
            &q,
            25,
        );
        assert_eq!(rows, brute(&v, dim, &set, &e, &q, 25));
        assert!(scores.windows(2).all(|s| s[0] >= s[1]));
    }

    #[test]
    fn scan_through_a_summary_reads_only_the_words_it_marks() {
        let (n, dim) = (5000, 8);
        let w = world(n);
        let v = vectors(n, dim);
        let q = vec![0.5, -1.0, 0.25, 0.0, 0.3, -0.2, 0.9, 0.1];
        let mut set = Bitset::new(n);
        for row in [3, 70, 71, 1000, 4095, 4999] {
            set.insert(row);
        }
        let e = rules(&w, None, &[], f32::MAX);
        let kept = atomic(set.words());
        let mut marks = vec![0u64; kept.len().div_ceil(64)];
        for (w, word) in set.words().iter().enumerate() {
            if *word != 0 {
                let (s, bit) = summary_bit(w);
                marks[s] |= bit;
            }
        }
        let summary = atomic(&marks);
        let all = brute(&v, dim, &set, &e, &q, 10);
        let got = scan(
            full(&v, dim),
            kept.len(),
            and_words(&kept, None),
            Some(&summary),
            &e,
            &q,
            10,
        );
        assert_eq!(got.0, all);
        summary[0].store(marks[0] & !summary_bit(1).1, Relaxed); // word 1 (rows 64..128) unmarked
        let got = scan(
            full(&v, dim),
            kept.len(),
            and_words(&kept, None),
            Some(&summary),
            &e,
            &q,
            10,
        );
        let without: Vec<i64> = all
            .iter()
            .copied()
            .filter(|&r| r != 70 && r != 71)
            .collect();
        assert_eq!(got.0, without);
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
        let e = rules(&w, Some(&brand_ok), &excluded, f32::MAX);
        let live = atomic(kept.words());
        let (rows, _) = scan(
            full(&v, dim),
            live.len(),
            and_words(&live, Some(also.words())),
            None,
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
        let e = rules(&w, None, &[], f32::MAX);
        let live = atomic(kept.words());
        let (rows, _) = scan(
            full(&v, 4),
            2,
            and_words(&live, None),
            None,
            &e,
            &[1.0; 4],
            100,
        );
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
