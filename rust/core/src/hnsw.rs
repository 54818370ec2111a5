//! Filtered search over a FAISS HNSW graph (`IndexHNSWFlat`), read in place.
//!
//! The walk is FAISS's own (`HNSW::search` with a bounded queue): greedy descent through the
//! upper levels, then a beam of the `ef` nearest nodes seen at level 0, expanded nearest first
//! until every node in the beam is expanded. Every node reached at level 0 is a candidate
//! result; a caller's `admit` test decides which may be returned, as FAISS's `IDSelector` would.
//! It is asked after the walk, nearest first, until `k` rows pass, so a request costs about
//! `k / share` checks and no bitmap over all items is built.
//!
//! Three things make it cheaper than FAISS's search on one query: it can read a half-precision
//! copy of the vectors (half the memory per distance; the rows returned are re-scored in full
//! precision), the visited marks are a bitset kept in a pool and reused across queries (FAISS
//! allocates and clears one byte per node per call), and vectors (and the rules' lines) are
//! prefetched a few nodes ahead of their use.

use crate::error::{invalid, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;

/// Little-endian values read from bytes at any alignment: an index FAISS memory-maps keeps its
/// arrays at whatever byte offset the file gives them, so they are read in place, not as `&[T]`.
#[derive(Clone, Copy)]
pub struct Unaligned<'a, T> {
    bytes: &'a [u8],
    _values: std::marker::PhantomData<T>,
}

/// A value [`Unaligned`] can read.
pub trait Value: Copy {
    const SIZE: usize;
    fn read(bytes: &[u8]) -> Self;
}

macro_rules! value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn read(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().unwrap())
            }
        }
    )*};
}
value!(i32, u64, f32);

impl<'a, T: Value> Unaligned<'a, T> {
    /// `bytes` holds whole values (a trailing partial value is an error).
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        if !bytes.len().is_multiple_of(T::SIZE) {
            return Err(invalid(format!(
                "hnsw: {} bytes is not a whole number of {}-byte values",
                bytes.len(),
                T::SIZE
            )));
        }
        Ok(Unaligned {
            bytes,
            _values: std::marker::PhantomData,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / T::SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    #[inline(always)]
    pub fn get(&self, i: usize) -> T {
        T::read(&self.bytes[i * T::SIZE..(i + 1) * T::SIZE])
    }

    /// Values `lo..hi`.
    #[inline(always)]
    pub fn range(&self, lo: usize, hi: usize) -> Unaligned<'a, T> {
        Unaligned {
            bytes: &self.bytes[lo * T::SIZE..hi * T::SIZE],
            _values: std::marker::PhantomData,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + 'a
    where
        T: 'a,
    {
        self.bytes.chunks_exact(T::SIZE).map(T::read)
    }
}

/// A FAISS HNSW graph and its flat storage, as FAISS lays them out in memory.
#[derive(Clone, Copy)]
pub struct Graph<'a> {
    /// Every node's neighbour lists, level 0 first; -1 ends a short list.
    pub neighbors: Unaligned<'a, i32>,
    /// `[n + 1]`: where each node's lists start in `neighbors`.
    pub offsets: Unaligned<'a, u64>,
    /// `[levels + 1]`: where each level's list starts within a node's lists.
    pub cum_neighbors: &'a [i32],
    /// `[n]`: the number of levels each node is on (its top level + 1).
    pub levels: Unaligned<'a, i32>,
    pub entry_point: i32,
    pub max_level: i32,
    /// `[n * dim]`, row-major.
    pub vectors: Unaligned<'a, f32>,
    /// The same vectors in half precision (IEEE f16 bits), when the walk should read those: half
    /// the memory per distance; the rows returned are then ordered and scored from `vectors`.
    pub half: Option<&'a [u16]>,
    pub dim: usize,
    /// Inner product (larger is nearer) or squared L2 (smaller is nearer).
    pub inner_product: bool,
}

/// Which rows a search may return. `prefetch` asks for the lines `admit` will read (a hint).
pub trait Admit {
    fn admit(&self, row: usize) -> bool;
    fn prefetch(&self, _row: usize) {}
}

/// Every row.
pub struct All;

impl Admit for All {
    fn admit(&self, _row: usize) -> bool {
        true
    }
}

impl Admit for crate::eligibility::Eligibility<'_> {
    /// The branch-free checks when the records are packed (all of a row's loads in flight at
    /// once), else the plain one.
    fn admit(&self, row: usize) -> bool {
        match self.packed() {
            Some(packed) if row < packed.len() => {
                self.live_ok(row) & self.admits_record(row, &packed[row])
            }
            _ => self.contains(row as i64),
        }
    }

    fn prefetch(&self, row: usize) {
        crate::eligibility::Eligibility::prefetch(self, row)
    }
}

impl<F: Fn(usize) -> bool> Admit for F {
    fn admit(&self, row: usize) -> bool {
        self(row)
    }
}

/// What one search found: up to `k` admitted rows, nearest first, with FAISS's scores (inner
/// product, or squared L2 distance).
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    pub rows: Vec<i64>,
    pub scores: Vec<f32>,
    /// Nodes reached at level 0 (distance computed), and how many of the nearest of them `admit`
    /// was asked about and accepted: together an estimate of the eligible share near the query.
    pub reached: usize,
    pub asked: usize,
    pub admitted: usize,
}

impl Graph<'_> {
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Checks the layout once, so searches may index without a failure path: every neighbour
    /// id and list range must lie inside the arrays.
    pub fn check(&self) -> Result<()> {
        let n = self.len();
        if self.dim == 0 || self.vectors.len() != n * self.dim {
            return Err(invalid(format!(
                "hnsw: {} stored values for {n} nodes of {} dims",
                self.vectors.len(),
                self.dim
            )));
        }
        if self.half.is_some_and(|h| h.len() != self.vectors.len()) {
            return Err(invalid(
                "hnsw: half-precision vectors do not match the vectors",
            ));
        }
        if self.offsets.len() != n + 1 || self.cum_neighbors.len() < 2 {
            return Err(invalid("hnsw: offsets or level table has the wrong length"));
        }
        if n > 0 && !(0..n as i64).contains(&(self.entry_point as i64)) {
            return Err(invalid(format!(
                "hnsw: entry point {} out of range",
                self.entry_point
            )));
        }
        let top = self.cum_neighbors.len() - 1;
        if self.max_level < 0 || self.max_level as usize >= top {
            return Err(invalid(format!(
                "hnsw: max level {} out of range",
                self.max_level
            )));
        }
        if self
            .cum_neighbors
            .windows(2)
            .any(|w| w[0] > w[1] || w[0] < 0)
        {
            return Err(invalid("hnsw: level table is not ascending"));
        }
        for (node, levels) in self.levels.iter().enumerate() {
            let end = self.offsets.get(node) as usize
                + self.cum_neighbors[(levels.max(0) as usize).min(top)] as usize;
            if levels < 1 || levels as usize > top || end > self.neighbors.len() {
                return Err(invalid(format!(
                    "hnsw: node {node}'s lists are out of range"
                )));
            }
        }
        if self.neighbors.iter().any(|v| v >= n as i32) {
            return Err(invalid("hnsw: a neighbour id is out of range"));
        }
        Ok(())
    }

    /// The `k` nearest admitted nodes to `query` with a beam of `ef` (raised to `k`). The graph
    /// must have passed [`Graph::check`].
    pub fn search(&self, query: &[f32], k: usize, ef: usize, rules: impl Admit) -> Result<Found> {
        if query.len() != self.dim {
            return Err(invalid(format!(
                "query: expected {} dims, got {}",
                self.dim,
                query.len()
            )));
        }
        if k == 0 || self.is_empty() {
            return Ok(Found::default());
        }
        let ef = ef.max(k);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2, FMA and F16C, checked just above.
            return Ok(unsafe { self.search_avx2(query, k, ef, rules) });
        }
        Ok(self.search_with::<false>(query, k, ef, rules))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn search_avx2(&self, query: &[f32], k: usize, ef: usize, rules: impl Admit) -> Found {
        self.search_with::<true>(query, k, ef, rules)
    }

    /// The search, inlined into each instruction-set variant so its distance loops are
    /// compiled for it.
    #[inline(always)]
    fn search_with<const FMA: bool>(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        rules: impl Admit,
    ) -> Found {
        let mut found = Found::default();

        // Greedy descent through the upper levels.
        let mut nearest = self.entry_point as usize;
        let mut d_nearest = self.distance::<FMA>(query, nearest);
        for level in (1..=self.max_level as usize).rev() {
            loop {
                let before = nearest;
                for v in self.level_list(before, level).iter() {
                    if v < 0 {
                        break;
                    }
                    let d = self.distance::<FMA>(query, v as usize);
                    if d < d_nearest {
                        (nearest, d_nearest) = (v as usize, d);
                    }
                }
                if nearest == before {
                    break;
                }
            }
        }

        let mut scratch = Scratch::take(self.len());
        let Scratch {
            visited,
            touched,
            beam,
            frontier,
            reached,
            fresh,
        } = &mut scratch;
        let mut visit = |node: usize| {
            let (word, bit) = (node >> 6, 1u64 << (node & 63));
            let unseen = visited[word] & bit == 0;
            if unseen {
                visited[word] |= bit;
                touched.push(node as u32);
            }
            unseen
        };
        // beam: the ef nearest nodes seen (max-heap); frontier: beam nodes not yet expanded
        // (min-heap); reached: every node whose distance was computed. Keys order by distance.
        let start = key(d_nearest, nearest);
        visit(nearest);
        beam.push(start);
        frontier.push(Reverse(start));
        reached.push(start);
        while let Some(Reverse(top)) = frontier.pop() {
            if beam.len() >= ef && beam.peek().is_some_and(|&worst| top > worst) {
                break;
            }
            fresh.clear();
            for v in self.level_list(node_of(top), 0).iter() {
                if v < 0 {
                    break;
                }
                if visit(v as usize) {
                    fresh.push(v as u32);
                }
            }
            // Each node's vector is asked for a few nodes ahead of its distance (all at once
            // would fill the core's miss buffers and stall).
            for &v in fresh.iter().take(AHEAD) {
                self.prefetch(v as usize);
            }
            for (j, &v) in fresh.iter().enumerate() {
                if let Some(&next) = fresh.get(j + AHEAD) {
                    self.prefetch(next as usize);
                }
                let kv = key(self.distance::<FMA>(query, v as usize), v as usize);
                reached.push(kv);
                if beam.len() < ef || beam.peek().is_some_and(|&worst| kv < worst) {
                    beam.push(kv);
                    frontier.push(Reverse(kv));
                    if beam.len() > ef {
                        beam.pop();
                    }
                }
            }
        }
        found.reached = reached.len();

        // The results: the k nearest admitted of every node reached at level 0 (what FAISS's
        // result handler keeps under an IDSelector). The rules are asked only after the walk,
        // nearest first, until k pass: about k / share checks, a few lines each, issued ahead.
        let mut done = 0;
        let mut chunk = (2 * k).min(reached.len());
        while found.rows.len() < k && done < reached.len() {
            let rest = &mut reached[done..];
            if chunk < rest.len() {
                rest.select_nth_unstable(chunk - 1);
            }
            let part = &mut rest[..chunk];
            if self.half.is_some() {
                // Walked in half precision: order and score these in full precision.
                for j in 0..part.len() {
                    if let Some(&next) = part.get(j + AHEAD) {
                        self.prefetch_exact(node_of(next));
                    }
                    let v = node_of(part[j]);
                    part[j] = key(self.exact_distance::<FMA>(query, v), v);
                }
            }
            part.sort_unstable();
            for &kv in part.iter().take(AHEAD) {
                rules.prefetch(node_of(kv));
            }
            for (j, &kv) in part.iter().enumerate() {
                if let Some(&next) = part.get(j + AHEAD) {
                    rules.prefetch(node_of(next));
                }
                found.asked += 1;
                if rules.admit(node_of(kv)) {
                    found.admitted += 1;
                    found.rows.push(node_of(kv) as i64);
                    let d = distance_of(kv);
                    found.scores.push(if self.inner_product { -d } else { d });
                    if found.rows.len() == k {
                        break;
                    }
                }
            }
            done += chunk;
            chunk = reached.len() - done;
        }
        scratch.give_back();
        found
    }

    /// The walk's distance (smaller is nearer), from the half-precision vectors when there are.
    /// Methods rather than closures: closures do not inherit the caller's target features, and
    /// their `mul_add` would become calls to `fmaf`.
    #[inline(always)]
    fn distance<const FMA: bool>(&self, query: &[f32], node: usize) -> f32 {
        let Some(half) = self.half else {
            return self.exact_distance::<FMA>(query, node);
        };
        let v = &half[node * self.dim..(node + 1) * self.dim];
        if self.inner_product {
            -half_distance::<FMA, false>(query, v)
        } else {
            half_distance::<FMA, true>(query, v)
        }
    }

    #[inline(always)]
    fn exact_distance<const FMA: bool>(&self, query: &[f32], node: usize) -> f32 {
        let v = self.vectors.range(node * self.dim, (node + 1) * self.dim);
        if self.inner_product {
            -full_distance::<FMA, false>(query, v)
        } else {
            full_distance::<FMA, true>(query, v)
        }
    }

    #[inline]
    fn level_list(&self, node: usize, level: usize) -> Unaligned<'_, i32> {
        let base = self.offsets.get(node) as usize;
        let lo = base + self.cum_neighbors[level] as usize;
        let hi = base + self.cum_neighbors[level + 1] as usize;
        self.neighbors.range(lo, hi)
    }

    /// Asks for the lines of the vector the walk reads for `node`.
    #[inline]
    fn prefetch(&self, node: usize) {
        match self.half {
            Some(half) => {
                for line in half[node * self.dim..(node + 1) * self.dim].chunks(32) {
                    crate::prefetch(&line[0]);
                }
            }
            None => self.prefetch_exact(node),
        }
    }

    #[inline]
    fn prefetch_exact(&self, node: usize) {
        let row = self.vectors.range(node * self.dim, (node + 1) * self.dim);
        for line in row.bytes.chunks(64) {
            crate::prefetch(&line[0]);
        }
    }
}

/// How many nodes ahead of its use a node's lines are prefetched.
const AHEAD: usize = 4;

/// A distance and a node packed so that integer order is distance order (ties by node id).
#[inline]
fn key(d: f32, node: usize) -> u64 {
    let bits = d.to_bits();
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    (u64::from(ordered) << 32) | node as u64
}

#[inline]
fn node_of(key: u64) -> usize {
    (key & 0xffff_ffff) as usize
}

#[inline]
fn distance_of(key: u64) -> f32 {
    let ordered = (key >> 32) as u32;
    f32::from_bits(if ordered >> 31 == 1 {
        ordered & !(1 << 31)
    } else {
        !ordered
    })
}

/// `a · b` (or with `L2`, `|a - b|²`) for `b` in half precision. With `SIMD` (only inside
/// `search_avx2`) eight lanes at a time through F16C's conversion, else one value at a time.
#[inline(always)]
pub(crate) fn half_distance<const SIMD: bool, const L2: bool>(a: &[f32], b: &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if SIMD && a.len() == b.len() && a.len().is_multiple_of(8) {
        use std::arch::x86_64::*;
        // SAFETY: SIMD is true only in `search_avx2`, compiled for AVX2, FMA and F16C once the
        // CPU was checked for them; every load reads 8 lanes inside `a` or `b`.
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
                let (x, y) = (
                    _mm256_loadu_ps(x.as_ptr()),
                    _mm256_cvtph_ps(_mm_loadu_si128(y.as_ptr().cast())),
                );
                acc = lane_step::<L2>(x, y, acc);
            }
            return sum8(acc);
        }
    }
    let term = |x: f32, y: f32| if L2 { (x - y) * (x - y) } else { x * y };
    a.iter().zip(b).map(|(&x, &y)| term(x, f16_to_f32(y))).sum()
}

/// One eight-lane step of a distance: `acc + x·y`, or with `L2`, `acc + (x - y)²`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn lane_step<const L2: bool>(
    x: std::arch::x86_64::__m256,
    y: std::arch::x86_64::__m256,
    acc: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    if L2 {
        let diff = _mm256_sub_ps(x, y);
        _mm256_fmadd_ps(diff, diff, acc)
    } else {
        _mm256_fmadd_ps(x, y, acc)
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sum8(v: std::arch::x86_64::__m256) -> f32 {
    let mut lanes = [0f32; 8];
    std::arch::x86_64::_mm256_storeu_ps(lanes.as_mut_ptr(), v);
    lanes.iter().sum()
}

/// An IEEE half-precision value's bits as an `f32`.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        0 => sign * man as f32 * f32::powi(2.0, -24),
        31 if man == 0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => f32::from_bits((u32::from(h & 0x8000) << 16) | ((exp + 112) << 23) | (man << 13)),
    }
}

/// `a · b` (or with `L2`, `|a - b|²`) for `b` read in place. With `SIMD` (only inside
/// `search_avx2`) eight lanes at a time, else eight running sums (the same arithmetic).
#[inline(always)]
fn full_distance<const SIMD: bool, const L2: bool>(a: &[f32], b: Unaligned<'_, f32>) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if SIMD && a.len() == b.len() && a.len().is_multiple_of(8) {
        use std::arch::x86_64::*;
        // SAFETY: SIMD is true only in `search_avx2`, compiled for AVX2 and FMA once the CPU was
        // checked for them; every (unaligned) load reads 32 bytes inside `a` or `b`.
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for (x, y) in a.chunks_exact(8).zip(b.bytes.chunks_exact(32)) {
                let (x, y) = (
                    _mm256_loadu_ps(x.as_ptr()),
                    _mm256_loadu_ps(y.as_ptr().cast()),
                );
                acc = lane_step::<L2>(x, y, acc);
            }
            return sum8(acc);
        }
    }
    let mut acc = [0f32; 8];
    for (i, &x) in a.iter().enumerate() {
        let y = b.get(i);
        acc[i % 8] += if L2 { (x - y) * (x - y) } else { x * y };
    }
    acc.iter().sum()
}

/// One search's working memory, pooled across searches and threads: a visited bitset (n / 8
/// bytes, small enough to stay in cache, unlike FAISS's byte per node allocated per call), the
/// nodes it marked (to clear just those words afterwards), and the heaps.
#[derive(Default)]
struct Scratch {
    visited: Vec<u64>,
    touched: Vec<u32>,
    beam: BinaryHeap<u64>,
    frontier: BinaryHeap<Reverse<u64>>,
    reached: Vec<u64>,
    fresh: Vec<u32>,
}

/// Most recently returned first, so a worker's few concurrent searches reuse warm memory.
static POOL: Mutex<Vec<Scratch>> = Mutex::new(Vec::new());

impl Scratch {
    fn take(n: usize) -> Scratch {
        let mut s = POOL
            .lock()
            .map(|mut p| p.pop())
            .unwrap_or_default()
            .unwrap_or_default();
        if s.visited.len() < n.div_ceil(64) {
            s.visited.resize(n.div_ceil(64), 0);
        }
        s.beam.clear();
        s.frontier.clear();
        s.reached.clear();
        s
    }

    fn give_back(mut self) {
        for &node in &self.touched {
            self.visited[node as usize >> 6] = 0;
        }
        self.touched.clear();
        if let Ok(mut pool) = POOL.lock() {
            pool.push(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-level graph over points on a line: level 0 links each point to its neighbours
    /// within 2, level 1 holds every fourth point linked to the next and previous ones. As
    /// bytes (neighbours, offsets, levels, vectors), one byte past an aligned start, as a
    /// memory-mapped FAISS file may leave them.
    fn line(n: usize) -> [Vec<u8>; 4] {
        let (w0, w1) = (4usize, 2usize);
        let mut neighbors = Vec::new();
        let mut offsets = vec![0u64];
        let mut levels: Vec<i32> = Vec::new();
        for i in 0..n {
            let mut l0: Vec<i32> = [i as i64 - 2, i as i64 - 1, i as i64 + 1, i as i64 + 2]
                .into_iter()
                .filter(|&j| j >= 0 && j < n as i64)
                .map(|j| j as i32)
                .collect();
            l0.resize(w0, -1);
            let mut l1: Vec<i32> = if i % 4 == 0 {
                [i as i64 - 4, i as i64 + 4]
                    .into_iter()
                    .filter(|&j| j >= 0 && j < n as i64)
                    .map(|j| j as i32)
                    .collect()
            } else {
                vec![]
            };
            l1.resize(w1, -1);
            neighbors.extend(l0);
            neighbors.extend(l1);
            offsets.push(neighbors.len() as u64);
            levels.push(if i % 4 == 0 { 2 } else { 1 });
        }
        let vectors = (0..n).flat_map(|i| [i as f32, 1.0]);
        let misaligned = |bytes: Vec<u8>| [vec![0u8], bytes].concat();
        [
            misaligned(neighbors.iter().flat_map(|v| v.to_le_bytes()).collect()),
            misaligned(offsets.iter().flat_map(|v| v.to_le_bytes()).collect()),
            misaligned(levels.iter().flat_map(|v| v.to_le_bytes()).collect()),
            misaligned(vectors.flat_map(|v| v.to_le_bytes()).collect()),
        ]
    }

    fn graph(parts: &[Vec<u8>; 4]) -> Graph<'_> {
        Graph {
            neighbors: Unaligned::new(&parts[0][1..]).unwrap(),
            offsets: Unaligned::new(&parts[1][1..]).unwrap(),
            cum_neighbors: &[0, 4, 6],
            levels: Unaligned::new(&parts[2][1..]).unwrap(),
            entry_point: 0,
            max_level: 1,
            vectors: Unaligned::new(&parts[3][1..]).unwrap(),
            half: None,
            dim: 2,
            inner_product: false,
        }
    }

    #[test]
    fn finds_the_nearest_admitted_points_on_a_line() {
        let parts = line(200);
        let g = graph(&parts);
        g.check().unwrap();
        let found = g.search(&[120.2, 1.0], 3, 8, All).unwrap();
        assert_eq!(found.rows, vec![120, 121, 119]);
        assert!((found.scores[0] - 0.04).abs() < 1e-4);
        let odd = g
            .search(&[120.2, 1.0], 3, 8, |r: usize| r % 2 == 1)
            .unwrap();
        assert_eq!(odd.rows, vec![121, 119, 123]);
        assert!(odd.admitted >= 3 && odd.asked >= odd.admitted && odd.reached >= odd.asked);
        // The visited table is reused: a second query sees nothing marked by the first.
        assert_eq!(g.search(&[120.2, 1.0], 3, 8, All).unwrap().rows, found.rows);
    }

    #[test]
    fn rejects_a_graph_whose_lists_leave_the_arrays() {
        let mut parts = line(20);
        parts[0][1 + 3 * 4..1 + 4 * 4].copy_from_slice(&20i32.to_le_bytes());
        let g = graph(&parts);
        assert!(g.check().is_err());
        let short = Unaligned::new(&parts[3][5..]).unwrap();
        assert!(Graph {
            vectors: short,
            ..graph(&line(20))
        }
        .check()
        .is_err());
        assert!(Unaligned::<f32>::new(&parts[3][2..]).is_err());
    }

    #[test]
    fn half_precision_bits_convert_exactly() {
        for (bits, value) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x0001, 5.960_464_5e-8),
            (0x7bff, 65504.0),
            (0x8000, -0.0),
        ] {
            assert_eq!(f16_to_f32(bits), value, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan() && f16_to_f32(0xfc00) == f32::NEG_INFINITY);
    }

    #[test]
    fn keys_order_like_distances() {
        let ds = [-3.5f32, -0.0, 0.0, 1e-30, 2.0, 7.25];
        for w in ds.windows(2) {
            assert!(key(w[0], 5) <= key(w[1], 5));
            assert_eq!(distance_of(key(w[0], 9)), w[0]);
        }
    }
}
