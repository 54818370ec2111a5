//! Filter-aware inverted lists: the rows partitioned by their nearest centroid (k-means, built
//! with the bundle), probed nearest list first over the kept eligible rows only.
//!
//! Between the exact scan of few kept rows and the graph walk of most, the rows a request may see
//! are too many to score all, yet too few for the walk, which wades through ineligible nodes. A
//! probe visits lists in order of their centroid's score and scores only their kept rows, until
//! enough rows that the request's rules admit have been scored.
//!
//! A bundle with lists numbers its rows list by list, so a list is a range of rows: its kept rows
//! are the set bits of a run of bitset words (64 rows a load), and their vectors lie together.

use crate::eligibility::Eligibility;
use crate::error::{invalid, Result};
use crate::kept::{dot, TopK, Vectors};

/// The partition: list `l` holds rows `offsets[l]..offsets[l + 1]`, and its centroid is
/// `centroids[l * dim..(l + 1) * dim]`.
#[derive(Clone, Copy)]
pub struct Lists<'a> {
    pub centroids: &'a [f32],
    pub offsets: &'a [i64],
    pub dim: usize,
}

/// How far a probe goes.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Stop after the list in which this many rows that the rules admit have been scored (an
    /// estimate: rows are checked against the rules only when they would enter the top k).
    pub min_scored: usize,
    /// Give up (the kept rows lie far from the query) when lists remain after the lists probed
    /// held this many rows and fewer than `min_scored` of them were kept.
    pub max_tested: usize,
}

/// Lists taken in order at a time: most probes end within the first few dozen.
const CHUNK: usize = 64;

impl<'a> Lists<'a> {
    /// The partition's arrays, their lengths checked (`check` reads every offset, once).
    pub fn new(centroids: &'a [f32], offsets: &'a [i64], dim: usize) -> Result<Self> {
        let nlist = offsets.len().saturating_sub(1);
        if dim == 0 || nlist == 0 || centroids.len() != nlist * dim {
            return Err(invalid(format!(
                "lists: {} centroid values for {nlist} lists of dimension {dim}",
                centroids.len()
            )));
        }
        Ok(Lists {
            centroids,
            offsets,
            dim,
        })
    }

    /// Checks the partition against a catalogue of `n` rows, so a probe never reads outside it:
    /// offsets rising from 0 to `n`.
    pub fn check(&self, n: usize) -> Result<()> {
        let (first, last) = (self.offsets[0], self.offsets[self.len()]);
        if first != 0 || last != n as i64 {
            return Err(invalid(format!(
                "lists: offsets run from {first} to {last}, the catalogue's rows from 0 to {n}"
            )));
        }
        if self.offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(invalid("lists: offsets must not fall"));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows of list `l` (within the catalogue once [`Lists::check`] passed).
    fn list(&self, l: usize) -> std::ops::Range<usize> {
        self.offsets[l] as usize..self.offsets[l + 1] as usize
    }
}

/// The top `k` by inner product with `query` among the rows of the kept set (word `w` is
/// `word(w)`, see [`crate::kept::and_words`]) that `rules` admits, found in the lists nearest
/// `query` (best first, ties by row); `None` when the probe gave up (see [`Probe`]).
///
/// Exact over the lists probed: every kept row in them is scored (and checked, see [`TopK`]).
/// The lists are probed until `probe.min_scored` admitted rows were scored, or all of them.
pub fn probe(
    vectors: Vectors<'_>,
    lists: &Lists<'_>,
    word: impl Fn(usize) -> u64,
    rules: &Eligibility<'_>,
    query: &[f32],
    k: usize,
    probe: Probe,
) -> Option<(Vec<i64>, Vec<f32>)> {
    let dim = lists.dim;
    let n = rules.len();
    if k == 0
        || query.len() != dim
        || vectors.dim != dim
        || vectors.rows() < n
        || vectors.check().is_err()
        || lists.check(n).is_err()
    {
        return Some((Vec::new(), Vec::new()));
    }
    let nlist = lists.len();
    let scores: Vec<f32> = lists
        .centroids
        .chunks_exact(dim)
        .map(|c| dot(c, query))
        .collect();
    let mut order: Vec<u32> = (0..nlist as u32).collect();
    let by_score = |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]);
    let mut top = TopK::new(vectors, rules, query, k);
    let mut tested = 0usize;
    let mut start = 0;
    while start < nlist {
        // The next CHUNK lists by centroid score, best first.
        let rest = &mut order[start..];
        let take = CHUNK.min(rest.len());
        if take < rest.len() {
            rest.select_nth_unstable_by(take - 1, by_score);
        }
        rest[..take].sort_unstable_by(by_score);
        for &l in &order[start..start + take] {
            if tested >= probe.max_tested && top.scored + top.pending() < probe.min_scored {
                return None;
            }
            let rows = lists.list(l as usize);
            offer_range(&mut top, &word, rows.clone());
            tested += rows.len();
            if top.scored + top.pending() >= probe.min_scored {
                top.flush();
                if top.admitted_estimate() >= probe.min_scored {
                    return Some(top.finish());
                }
            }
        }
        start += take;
    }
    Some(top.finish())
}

/// Offers the kept rows of `rows`, a word of the kept set at a time.
#[inline]
fn offer_range(top: &mut TopK<'_>, word: &impl Fn(usize) -> u64, rows: std::ops::Range<usize>) {
    if rows.is_empty() {
        return;
    }
    for w in rows.start >> 6..=(rows.end - 1) >> 6 {
        let base = w << 6;
        let mut bits = word(w);
        if base < rows.start {
            bits &= !0u64 << (rows.start - base);
        }
        if base + 64 > rows.end {
            bits &= !0u64 >> (base + 64 - rows.end);
        }
        while bits != 0 {
            top.offer(base + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kept::fixtures::{rules, world};
    use crate::kept::{and_words, scan};
    use std::sync::atomic::AtomicU64;

    /// `n` rows (a multiple of 16) of dimension 4 in 16 lists of consecutive rows: the rows of
    /// list `l` lie near centroid `l` (unit vectors around a circle), so the lists are the rows'
    /// true nearest centroids.
    fn partition(n: usize) -> (Vec<f32>, Vec<f32>, Vec<i64>) {
        let angle = |l: usize| l as f32 * std::f32::consts::TAU / 16.0;
        let centroids: Vec<f32> = (0..16)
            .flat_map(|l| [angle(l).cos(), angle(l).sin(), 0.0, 0.0])
            .collect();
        let per_list = n / 16;
        let vectors: Vec<f32> = (0..n)
            .flat_map(|i| {
                let a = angle(i / per_list) + ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.3;
                [a.cos(), a.sin(), (i % 7) as f32 * 0.01, 0.0]
            })
            .collect();
        let offsets = (0..=16).map(|l| (l * per_list) as i64).collect();
        (centroids, vectors, offsets)
    }

    fn full(v: &[f32]) -> Vectors<'_> {
        Vectors {
            full: v,
            half: None,
            dim: 4,
        }
    }

    fn kept_every(n: usize, every: usize) -> Vec<AtomicU64> {
        let mut words = vec![0u64; n.div_ceil(64)];
        for row in (0..n).step_by(every) {
            words[row >> 6] |= 1 << (row & 63);
        }
        words.into_iter().map(AtomicU64::new).collect()
    }

    const ALL: Probe = Probe {
        min_scored: usize::MAX,
        max_tested: usize::MAX,
    };

    #[test]
    fn probing_every_list_equals_the_exact_scan() {
        let n = 2000 - 2000 % 16;
        let (c, v, o) = partition(n);
        let lists = Lists::new(&c, &o, 4).unwrap();
        let w = world(n);
        let e = rules(&w, None, &[], 1500.0);
        let kept = kept_every(n, 3);
        let q = [0.3, 0.9, 0.1, 0.0];
        let got = probe(full(&v), &lists, and_words(&kept, None), &e, &q, 50, ALL).unwrap();
        let exact = scan(
            full(&v),
            kept.len(),
            and_words(&kept, None),
            None,
            &e,
            &q,
            50,
        );
        assert_eq!(got, exact);
        assert!(got.0.iter().all(|&r| r % 3 == 0 && r <= 1500));
    }

    #[test]
    fn probe_stops_after_the_nearest_lists_that_fill_it() {
        let n = 1600; // 100 rows a list
        let (c, v, o) = partition(n);
        let lists = Lists::new(&c, &o, 4).unwrap();
        let w = world(n);
        let e = rules(&w, None, &[], f32::MAX);
        let kept = kept_every(n, 1);
        let q = [1.0, 0.05, 0.0, 0.0]; // nearest list 0, then 1 and 15
        let enough = Probe {
            min_scored: 150,
            max_tested: usize::MAX,
        };
        let (rows, _) =
            probe(full(&v), &lists, and_words(&kept, None), &e, &q, 10, enough).unwrap();
        // Two lists probed (0, then 1): the top 10 all come from them.
        assert!(rows.iter().all(|&r| r < 200));
        let exact = scan(
            full(&v),
            kept.len(),
            and_words(&kept, None),
            None,
            &e,
            &q,
            10,
        );
        assert_eq!(rows, exact.0);
    }

    #[test]
    fn probe_gives_up_when_the_kept_rows_lie_far_away() {
        let n = 1600;
        let (c, v, o) = partition(n);
        let lists = Lists::new(&c, &o, 4).unwrap();
        let w = world(n);
        let e = rules(&w, None, &[], f32::MAX);
        // Only list 8 (opposite the query) is kept.
        let mut words = vec![0u64; n.div_ceil(64)];
        for row in 800..900 {
            words[row >> 6] |= 1 << (row & 63);
        }
        let kept: Vec<AtomicU64> = words.into_iter().map(AtomicU64::new).collect();
        let q = [1.0, 0.0, 0.0, 0.0];
        let budget = Probe {
            min_scored: 50,
            max_tested: 400,
        };
        assert!(probe(full(&v), &lists, and_words(&kept, None), &e, &q, 10, budget).is_none());
        let unbounded = Probe {
            min_scored: 50,
            max_tested: usize::MAX,
        };
        let got = probe(
            full(&v),
            &lists,
            and_words(&kept, None),
            &e,
            &q,
            10,
            unbounded,
        )
        .unwrap();
        assert_eq!(
            got,
            scan(
                full(&v),
                kept.len(),
                and_words(&kept, None),
                None,
                &e,
                &q,
                10
            )
        );
    }

    #[test]
    fn a_malformed_partition_is_refused() {
        let (c, _, o) = partition(64);
        let lists = Lists::new(&c, &o, 4).unwrap();
        assert!(lists.check(64).is_ok());
        assert!(lists.check(63).is_err()); // the last list ends past the catalogue
        assert!(Lists::new(&c[..60], &o, 4).is_err());
        assert!(Lists::new(&c, &o[..16], 4).is_err());
        let mut falling = o.clone();
        falling.swap(3, 4);
        assert!(Lists::new(&c, &falling, 4).unwrap().check(64).is_err());
    }

    #[test]
    fn ranges_that_start_and_end_inside_a_word_offer_only_their_kept_rows() {
        let n = 320;
        let w = world(n);
        let e = rules(&w, None, &[], f32::MAX);
        let v: Vec<f32> = (0..n * 4).map(|i| (i % 13) as f32).collect();
        let kept = kept_every(n, 1);
        let q = [1.0; 4];
        for range in [3..5, 60..70, 64..128, 1..319, 100..101] {
            let mut top = TopK::new(full(&v), &e, &q, n);
            offer_range(&mut top, &and_words(&kept, None), range.clone());
            let (mut rows, _) = top.finish();
            rows.sort_unstable();
            let want: Vec<i64> = range.map(|r| r as i64).collect();
            assert_eq!(rows, want);
        }
    }
}
