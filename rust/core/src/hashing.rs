//! Feature hashing compatible bit for bit with scikit-learn's `FeatureHasher`.
//!
//! A feature is a UTF-8 name and a value. Its bucket and sign come from MurmurHash3 (x86, 32-bit,
//! seed 0) read as a signed integer, exactly as `sklearn.feature_extraction._hashing_fast` does.

use crate::error::{invalid, Result};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// MurmurHash3_x86_32 of `key` with `seed`.
pub fn murmurhash3_32(key: &[u8], seed: u32) -> u32 {
    let mix = |k: u32| {
        k.wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593)
    };
    let mut h = seed;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        h ^= mix(u32::from_le_bytes(block.try_into().unwrap()));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    let k = match key.len().checked_sub(4) {
        // The tail is the top bytes of the last four, read in one load (0 when there is none).
        Some(last) => {
            let last = u32::from_le_bytes(key[last..].try_into().unwrap());
            ((last as u64) >> (32 - 8 * tail.len())) as u32
        }
        None => tail.iter().rev().fold(0, |k, &b| k << 8 | b as u32),
    };
    h ^= mix(k);
    h ^= key.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Largest `n_features` scikit-learn accepts (2^31 - 1).
pub const MAX_FEATURES: u64 = i32::MAX as u64;

/// Checks `n_features` is in 1..=2^31-1.
pub fn check_n_features(n_features: u64) -> Result<u32> {
    if n_features == 0 || n_features > MAX_FEATURES {
        return Err(invalid(format!(
            "n_features must be between 1 and 2**31-1, got {n_features}"
        )));
    }
    Ok(n_features as u32)
}

/// `a % d` for a fixed divisor without a division (Lemire, Kaser & Kurz 2019, exact for all u32).
#[derive(Debug, Clone, Copy)]
pub struct FastMod {
    d: u32,
    m: u64,
}

impl FastMod {
    pub fn new(d: u32) -> Self {
        assert!(d > 0, "divisor must be positive");
        FastMod {
            d,
            m: (u64::MAX / d as u64).wrapping_add(1),
        }
    }

    #[inline]
    pub fn of(self, a: u32) -> u32 {
        // A power of two (such as the default 2^20, or 1) needs only a mask.
        if self.d.is_power_of_two() {
            return a & (self.d - 1);
        }
        let low = self.m.wrapping_mul(a as u64);
        ((low as u128 * self.d as u128) >> 64) as u32
    }
}

/// Bucket and sign (+1 or -1) of a feature name, as scikit-learn computes them.
#[inline]
pub fn bucket_and_sign(name: &[u8], n_features: FastMod) -> (u32, f64) {
    let h = murmurhash3_32(name, 0) as i32;
    let index = if h == i32::MIN {
        // abs(-2^31) overflows; scikit-learn defines the bucket as below.
        n_features.of(i32::MAX as u32 - (n_features.d - 1))
    } else {
        n_features.of(h.unsigned_abs())
    };
    (index, if h >= 0 { 1.0 } else { -1.0 })
}

/// Hashed features of many rows, before duplicates are merged: row `r` owns
/// `index[indptr[r]..indptr[r + 1]]` and the same range of `value` (already signed).
#[derive(Debug, Clone)]
pub struct HashedRows {
    pub indptr: Vec<usize>,
    pub index: Vec<u32>,
    pub value: Vec<f64>,
    n_features: FastMod,
    alternate_sign: bool,
}

impl HashedRows {
    pub fn new(n_features: u32, alternate_sign: bool) -> Self {
        HashedRows {
            indptr: vec![0],
            index: Vec::new(),
            value: Vec::new(),
            n_features: FastMod::new(n_features),
            alternate_sign,
        }
    }

    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Hashes one feature into the current row; zero values are skipped as scikit-learn skips them.
    #[inline]
    pub fn push(&mut self, name: &[u8], value: f64) {
        if value == 0.0 {
            return;
        }
        let (index, sign) = bucket_and_sign(name, self.n_features);
        self.index.push(index);
        self.value.push(if self.alternate_sign {
            value * sign
        } else {
            value
        });
    }

    /// Closes the current row.
    pub fn end_row(&mut self) {
        self.indptr.push(self.index.len());
    }

    /// Reserves room for about `features` more features.
    pub fn reserve(&mut self, features: usize) {
        self.index.reserve(features);
        self.value.reserve(features);
    }
}

/// A value type the CSR output can hold (scikit-learn's `dtype`: float64 or float32).
pub trait Value: Copy + Send + Sync + std::ops::AddAssign + Default {
    fn from_f64(v: f64) -> Self;
}
impl Value for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}
impl Value for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

/// A CSR matrix in canonical form: column indices sorted within each row, duplicates summed.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr<T> {
    pub indptr: Vec<i64>,
    pub indices: Vec<i32>,
    pub data: Vec<T>,
}

/// Rows per parallel task: big enough that scheduling costs nothing beside the work.
const ROWS_PER_TASK: usize = 2048;

/// Sorts each row by column (stable, as scipy's insertion sort is for short rows) and sums
/// duplicates in that order, in the output type as scipy does. Identical for any thread count.
pub fn to_csr<T: Value>(rows: &HashedRows) -> Csr<T> {
    build_csr(
        rows.n_rows(),
        |r| rows.indptr[r],
        |r, entries| {
            let span = rows.indptr[r]..rows.indptr[r + 1];
            for (&i, &v) in rows.index[span.clone()].iter().zip(&rows.value[span]) {
                entries.push(i, T::from_f64(v));
            }
            Ok(())
        },
    )
    .expect("reading hashed rows cannot fail")
}

/// Offsets of a flat string column (Arrow's `string` uses i32, `large_string` i64).
pub trait Offset: Copy + Send + Sync {
    fn to_usize(self) -> usize;
}
impl Offset for i32 {
    fn to_usize(self) -> usize {
        self as usize
    }
}
impl Offset for i64 {
    fn to_usize(self) -> usize {
        self as usize
    }
}

/// Rows of features stored flat, as Arrow stores `list<string>`: feature `f`'s name is
/// `data[offsets[f]..offsets[f + 1]]`, row `r` owns features `row_indptr[r]..row_indptr[r + 1]`,
/// and `values[f]` is its value (1 when `values` is `None`).
pub struct FlatFeatures<'a, O> {
    pub data: &'a [u8],
    pub offsets: &'a [O],
    pub row_indptr: &'a [i64],
    pub values: Option<&'a [f64]>,
}

impl<O: Offset> FlatFeatures<'_, O> {
    fn check(&self) -> Result<()> {
        let n_names = self.offsets.len().saturating_sub(1);
        if self.offsets.is_empty() {
            return Err(invalid("offsets must hold at least one entry"));
        }
        if self
            .offsets
            .windows(2)
            .any(|w| w[0].to_usize() > w[1].to_usize())
            || self.offsets[n_names].to_usize() > self.data.len()
        {
            return Err(invalid(
                "offsets must be non-decreasing and within the data",
            ));
        }
        if self.row_indptr.first() != Some(&0)
            || self.row_indptr.windows(2).any(|w| w[0] > w[1])
            || *self.row_indptr.last().unwrap() as usize > n_names
        {
            return Err(invalid(
                "row offsets must start at 0, be non-decreasing and within the names",
            ));
        }
        if let Some(values) = self.values {
            if values.len() != n_names {
                return Err(invalid(format!(
                    "{} values for {n_names} names",
                    values.len()
                )));
            }
            if let Some(f) = values.iter().position(|v| !v.is_finite()) {
                let row = self
                    .row_indptr
                    .partition_point(|&start| start as usize <= f)
                    - 1;
                return Err(invalid(format!(
                    "row {row}: value of feature {f} is {}",
                    values[f]
                )));
            }
        }
        Ok(())
    }
}

/// Hashes flat rows straight into canonical CSR, all in parallel: the same output as hashing the
/// same rows one Python object at a time.
pub fn hash_flat<T: Value, O: Offset>(
    rows: &FlatFeatures<O>,
    n_features: u32,
    alternate_sign: bool,
) -> Result<Csr<T>> {
    rows.check()?;
    let modulo = FastMod::new(n_features);
    build_csr(
        rows.row_indptr.len() - 1,
        |r| rows.row_indptr[r] as usize,
        |r, entries| {
            let names = rows.row_indptr[r] as usize..rows.row_indptr[r + 1] as usize;
            let name =
                |f: usize| &rows.data[rows.offsets[f].to_usize()..rows.offsets[f + 1].to_usize()];
            match rows.values {
                // Names alone (the usual column): value 1, signed.
                None => {
                    for f in names {
                        let (index, sign) = bucket_and_sign(name(f), modulo);
                        entries.push(index, T::from_f64(if alternate_sign { sign } else { 1.0 }));
                    }
                }
                Some(values) => {
                    for f in names {
                        let value = values[f];
                        if value == 0.0 {
                            continue;
                        }
                        let (index, sign) = bucket_and_sign(name(f), modulo);
                        entries.push(
                            index,
                            T::from_f64(if alternate_sign { value * sign } else { value }),
                        );
                    }
                }
            }
            Ok(())
        },
    )
}

/// One row's (column, value) entries in input order, as `build_csr`'s `fill` pushes them: the
/// first `SHORT_ROW` in place (no allocation, no capacity check), any more in a `Vec`.
pub struct RowEntries<T> {
    len: usize,
    columns: [u32; SHORT_ROW],
    values: [T; SHORT_ROW],
    more: Vec<(u32, T)>,
    /// Free for `fill` to use, e.g. to encode a name.
    pub scratch: Vec<u8>,
}

impl<T: Value> RowEntries<T> {
    fn new() -> Self {
        RowEntries {
            len: 0,
            columns: [0; SHORT_ROW],
            values: [T::default(); SHORT_ROW],
            more: Vec::new(),
            scratch: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, column: u32, value: T) {
        if self.len < SHORT_ROW {
            self.columns[self.len] = column;
            self.values[self.len] = value;
        } else {
            self.more.push((column, value));
        }
        self.len += 1;
    }

    fn clear(&mut self) {
        self.len = 0;
        self.more.clear();
    }
}

/// Builds a canonical CSR matrix of `n` rows in parallel; `fill(r, entries)` pushes row `r`'s
/// (column, value) entries, which are then stably sorted and their duplicates summed. Columns
/// must be below 2^31. `row_bound(r)` is an upper bound of the entries before row `r`
/// (non-decreasing, `row_bound(0) = 0`): each task writes its rows straight into its own part of
/// the output, and the gaps left by merged duplicates are closed afterwards, so the entries are
/// written once and never copied between buffers. The first error of `fill` stops the build.
pub fn build_csr<T: Value>(
    n: usize,
    row_bound: impl Fn(usize) -> usize + Sync,
    fill: impl Fn(usize, &mut RowEntries<T>) -> Result<()> + Sync,
) -> Result<Csr<T>> {
    let total = row_bound(n);
    let mut indices: Vec<i32> = Vec::with_capacity(total);
    let mut data: Vec<T> = Vec::with_capacity(total);
    // Split the (uninitialised: zeroing it would be a serial pass) output into one part per task.
    // One thread takes all rows as one task: its rows are written back to back, leaving no gaps
    // to close (a gap after any duplicate would move every entry after it).
    let rows_per_task = if rayon::current_num_threads() == 1 {
        n.max(1)
    } else {
        ROWS_PER_TASK
    };
    let mut tasks = Vec::with_capacity(n / rows_per_task + 1);
    let mut rest_i = &mut indices.spare_capacity_mut()[..total];
    let mut rest_d = &mut data.spare_capacity_mut()[..total];
    for start in (0..n).step_by(rows_per_task) {
        let end = (start + rows_per_task).min(n);
        let len = row_bound(end) - row_bound(start);
        let (part_i, tail_i) = std::mem::take(&mut rest_i).split_at_mut(len);
        let (part_d, tail_d) = std::mem::take(&mut rest_d).split_at_mut(len);
        (rest_i, rest_d) = (tail_i, tail_d);
        tasks.push((start, end, part_i, part_d));
    }
    let row_nnz: Vec<Vec<usize>> = tasks
        .into_par_iter()
        .map(|(start, end, out_i, out_d)| {
            let mut nnz = Vec::with_capacity(end - start);
            let mut row = RowEntries::new();
            let mut at = 0;
            for r in start..end {
                row.clear();
                fill(r, &mut row)?;
                let written = merge_row(&row, &mut out_i[at..], &mut out_d[at..]);
                nnz.push(written);
                at += written;
            }
            Ok(nnz)
        })
        .collect::<Result<_>>()?;
    // Close the gaps: move each task's entries down to where the previous task's ended.
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0i64);
    let mut write = 0;
    for (task, nnz) in row_nnz.iter().enumerate() {
        let read = row_bound(task * rows_per_task);
        let len: usize = nnz.iter().sum();
        if read != write {
            indices
                .spare_capacity_mut()
                .copy_within(read..read + len, write);
            data.spare_capacity_mut()
                .copy_within(read..read + len, write);
        }
        for &k in nnz {
            indptr.push(indptr.last().unwrap() + k as i64);
        }
        write += len;
    }
    // SAFETY: the tasks wrote entries 0..write (each task's, moved down just above).
    unsafe {
        indices.set_len(write);
        data.set_len(write);
    }
    Ok(Csr {
        indptr,
        indices,
        data,
    })
}

/// Rows up to this long are sorted by rank; longer ones by a comparison sort.
const SHORT_ROW: usize = 64;
// A short row's keys hold the position in their low 6 bits.
const _: () = assert!(SHORT_ROW == 1 << 6);

/// Writes a row's entries sorted by column (stably, as scipy's insertion sort is for short rows)
/// with equal columns summed in that order; returns how many it wrote. Each entry is sorted as one
/// unique key, its column above its position, so a plain sort is stable and gives the position
/// of the value to add. Short rows of columns below 2^25 (the norm) fit the key in an i32.
fn merge_row<T: Value>(
    row: &RowEntries<T>,
    out_i: &mut [MaybeUninit<i32>],
    out_d: &mut [MaybeUninit<T>],
) -> usize {
    let n = row.len;
    if n <= SHORT_ROW {
        let columns = &row.columns[..n];
        if columns.iter().fold(0, |high, &c| high | c) < 1 << 25 {
            let mut keys = [0i32; SHORT_ROW];
            for (j, (key, &c)) in keys.iter_mut().zip(columns).enumerate() {
                *key = (c << 6 | j as u32) as i32;
            }
            let sorted = sort_short(&keys, n);
            let entries = sorted[..n]
                .iter()
                .map(|&key| ((key >> 6) as u32, key as usize & 63));
            return write_merged(entries, &row.values, out_i, out_d);
        }
    }
    let (columns, values): (Vec<u32>, Vec<T>) = row.columns[..n.min(SHORT_ROW)]
        .iter()
        .copied()
        .zip(row.values)
        .chain(row.more.iter().copied())
        .unzip();
    let mut keys: Vec<u64> = columns
        .iter()
        .enumerate()
        .map(|(j, &c)| (c as u64) << 32 | j as u64)
        .collect();
    keys.sort_unstable();
    let entries = keys
        .iter()
        .map(|&key| ((key >> 32) as u32, key as u32 as usize));
    write_merged(entries, &values, out_i, out_d)
}

/// Writes (column, position) pairs sorted by column, summing the values of equal columns.
#[inline(always)]
fn write_merged<T: Value>(
    mut entries: impl Iterator<Item = (u32, usize)>,
    values: &[T],
    out_i: &mut [MaybeUninit<i32>],
    out_d: &mut [MaybeUninit<T>],
) -> usize {
    let Some((mut column, j)) = entries.next() else {
        return 0;
    };
    let (mut sum, mut at) = (values[j], 0);
    for (c, j) in entries {
        if c == column {
            sum += values[j];
            continue;
        }
        out_i[at].write(column as i32);
        out_d[at].write(sum);
        at += 1;
        (column, sum) = (c, values[j]);
    }
    out_i[at].write(column as i32);
    out_d[at].write(sum);
    at + 1
}

/// The first `n` of `keys` (unique, not negative) in ascending order, by rank: a key's place is
/// the count of smaller keys, counted for eight keys at once with one vector compare per other
/// key, where a comparison sort mispredicts on nearly every step for random columns.
fn sort_short(keys: &[i32; SHORT_ROW], n: usize) -> [i32; SHORT_ROW] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { sort_short_avx2(keys, n) };
    }
    sort_short_portable(keys, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sort_short_avx2(keys: &[i32; SHORT_ROW], n: usize) -> [i32; SHORT_ROW] {
    use std::arch::x86_64::*;
    let mut ranks = [[0i32; 8]; SHORT_ROW / 8];
    for (rank, block) in ranks[..n.div_ceil(8)].iter_mut().zip(keys.chunks_exact(8)) {
        let block = _mm256_loadu_si256(block.as_ptr().cast());
        let mut counts = _mm256_setzero_si256();
        for &other in &keys[..n] {
            // The compare gives -1 where `other` is smaller.
            counts = _mm256_sub_epi32(counts, _mm256_cmpgt_epi32(block, _mm256_set1_epi32(other)));
        }
        _mm256_storeu_si256(rank.as_mut_ptr().cast(), counts);
    }
    place_by_rank(keys, n, &ranks)
}

/// The same ranks in plain code (the compiler vectorises it less well: as reductions).
fn sort_short_portable(keys: &[i32; SHORT_ROW], n: usize) -> [i32; SHORT_ROW] {
    let mut ranks = [[0i32; 8]; SHORT_ROW / 8];
    for (rank, block) in ranks[..n.div_ceil(8)].iter_mut().zip(keys.chunks_exact(8)) {
        // Counted in a local so the eight counts stay in registers across the loop.
        let mut counts = [0i32; 8];
        for &other in &keys[..n] {
            for (count, &key) in counts.iter_mut().zip(block) {
                *count += (other < key) as i32;
            }
        }
        *rank = counts;
    }
    place_by_rank(keys, n, &ranks)
}

#[inline(always)]
fn place_by_rank(
    keys: &[i32; SHORT_ROW],
    n: usize,
    ranks: &[[i32; 8]; SHORT_ROW / 8],
) -> [i32; SHORT_ROW] {
    let mut sorted = [0i32; SHORT_ROW];
    for (j, &key) in keys[..n].iter().enumerate() {
        sorted[ranks[j / 8][j % 8] as usize] = key;
    }
    sorted
}

/// How `pool` combines the table rows of one input row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Sum,
    /// Sum divided by the number of (non-zero) features in the row; empty rows stay zero.
    Mean,
}

/// Pooled embeddings: `out[r] = sum_f value_f * table[bucket_f]` (signed as hashed), `[rows, dim]`.
/// `table` is row-major `[n_buckets, dim]` and must have exactly `n_features` rows.
pub fn pool(rows: &HashedRows, table: &[f32], dim: usize, mode: Pooling) -> Result<Vec<f32>> {
    if dim == 0 || !table.len().is_multiple_of(dim) {
        return Err(invalid(format!(
            "table of {} values is not a whole number of rows of dim {dim}",
            table.len()
        )));
    }
    let n_buckets = table.len() / dim;
    if let Some(&bad) = rows.index.iter().find(|&&i| i as usize >= n_buckets) {
        return Err(invalid(format!(
            "bucket {bad} is outside a table of {n_buckets} rows"
        )));
    }
    let mut out = vec![0f32; rows.n_rows() * dim];
    out.par_chunks_mut(dim).enumerate().for_each(|(r, pooled)| {
        let span = rows.indptr[r]..rows.indptr[r + 1];
        let mut acc = vec![0f64; dim];
        for (&i, &v) in rows.index[span.clone()]
            .iter()
            .zip(&rows.value[span.clone()])
        {
            let start = i as usize * dim;
            for (a, &t) in acc.iter_mut().zip(&table[start..start + dim]) {
                *a += v * t as f64;
            }
        }
        let scale = match mode {
            Pooling::Mean if !span.is_empty() => 1.0 / span.len() as f64,
            _ => 1.0,
        };
        for (p, a) in pooled.iter_mut().zip(&acc) {
            *p = (a * scale) as f32;
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_matches_reference_vectors() {
        // Reference values from the canonical SMHasher implementation.
        assert_eq!(murmurhash3_32(b"", 0), 0);
        assert_eq!(murmurhash3_32(b"", 1), 0x514E_28B7);
        assert_eq!(murmurhash3_32(b"hello", 0), 0x248B_FA47);
        assert_eq!(murmurhash3_32(b"Hello, world!", 1234), 0xFAF6_CDB3);
        assert_eq!(
            murmurhash3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2E4F_F723
        );
    }

    #[test]
    fn fast_mod_equals_remainder() {
        let divisors = [1u32, 2, 3, 7, 1000, 1 << 20, (1 << 31) - 1, u32::MAX];
        let values = [
            0u32,
            1,
            2,
            999,
            1 << 31,
            u32::MAX,
            u32::MAX - 1,
            123_456_789,
        ];
        for &d in &divisors {
            for &a in &values {
                assert_eq!(FastMod::new(d).of(a), a % d, "{a} % {d}");
            }
            for a in (0..u32::MAX).step_by(9_999_991) {
                assert_eq!(FastMod::new(d).of(a), a % d, "{a} % {d}");
            }
        }
    }

    #[test]
    fn n_features_range_is_checked() {
        assert!(check_n_features(0).is_err());
        assert!(check_n_features(1 << 31).is_err());
        assert_eq!(check_n_features((1 << 31) - 1).unwrap(), i32::MAX as u32);
    }

    #[test]
    fn duplicates_are_summed_and_sorted() {
        let mut rows = HashedRows::new(1 << 20, false);
        for name in ["b", "a", "b"] {
            rows.push(name.as_bytes(), 1.0);
        }
        rows.end_row();
        let csr: Csr<f64> = to_csr(&rows);
        assert_eq!(csr.indptr, vec![0, 2]);
        assert!(csr.indices[0] < csr.indices[1]);
        assert_eq!(csr.data.iter().sum::<f64>(), 3.0);
    }

    #[test]
    fn flat_rows_hash_like_pushed_rows() {
        let names = ["region=CN-ZJ", "连衣裙", "a", "a", "b"];
        let data: Vec<u8> = names.concat().into_bytes();
        let mut offsets = vec![0i32];
        for n in names {
            offsets.push(offsets.last().unwrap() + n.len() as i32);
        }
        let flat = FlatFeatures {
            data: &data,
            offsets: &offsets,
            row_indptr: &[0, 2, 2, 5],
            values: None,
        };
        let mut rows = HashedRows::new(1000, true);
        for (r, row) in [&names[..2], &[], &names[2..]].iter().enumerate() {
            for n in row.iter() {
                rows.push(n.as_bytes(), 1.0);
            }
            rows.end_row();
            assert_eq!(rows.n_rows(), r + 1);
        }
        assert_eq!(
            hash_flat::<f64, i32>(&flat, 1000, true).unwrap(),
            to_csr::<f64>(&rows)
        );
    }

    #[test]
    fn flat_rows_reject_bad_offsets() {
        let flat = FlatFeatures {
            data: b"ab",
            offsets: &[0i64, 3],
            row_indptr: &[0, 1],
            values: None,
        };
        assert!(hash_flat::<f64, i64>(&flat, 8, true).is_err());
        let flat = FlatFeatures {
            data: b"ab",
            offsets: &[0i64, 2],
            row_indptr: &[0, 2],
            values: None,
        };
        assert!(hash_flat::<f64, i64>(&flat, 8, true).is_err());
        let flat = FlatFeatures {
            data: b"ab",
            offsets: &[0i64, 2],
            row_indptr: &[0, 1],
            values: Some(&[f64::NAN]),
        };
        assert!(hash_flat::<f64, i64>(&flat, 8, true)
            .unwrap_err()
            .to_string()
            .contains("row 0"));
    }

    #[test]
    fn long_rows_and_any_thread_count_merge_like_a_reference() {
        let mut rows = HashedRows::new(50, false);
        let mut expected = Vec::new();
        for r in 0..(3 * ROWS_PER_TASK + 7) {
            let mut row = std::collections::BTreeMap::new();
            for j in 0..(r % 90) {
                let name = format!("{r}-{}", j % 17);
                rows.push(name.as_bytes(), 1.0);
                *row.entry(bucket_and_sign(name.as_bytes(), FastMod::new(50)).0 as i32)
                    .or_insert(0.0) += 1.0;
            }
            rows.end_row();
            expected.push(row);
        }
        let csr: Csr<f64> = to_csr(&rows);
        for threads in [1, 3] {
            let on_threads = crate::with_threads(Some(threads), || to_csr::<f64>(&rows));
            assert_eq!(on_threads.unwrap(), csr, "{threads} thread(s)");
        }
        for (r, row) in expected.iter().enumerate() {
            let span = csr.indptr[r] as usize..csr.indptr[r + 1] as usize;
            let got: Vec<(i32, f64)> = csr.indices[span.clone()]
                .iter()
                .copied()
                .zip(csr.data[span].iter().copied())
                .collect();
            assert_eq!(
                got,
                row.iter().map(|(&i, &v)| (i, v)).collect::<Vec<_>>(),
                "row {r}"
            );
        }
    }

    #[test]
    fn merged_rows_of_any_length_and_column_range_match_a_reference() {
        let mut x: u64 = 7;
        for len in 0..100 {
            for range in [3, 1 << 20, (1 << 25) + 5, (1 << 31) - 1] {
                let columns: Vec<u32> = (0..len)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((x >> 33) % range) as u32
                    })
                    .collect();
                // Values of mixed scales and signs: summed in another order, they round differently.
                let values: Vec<f64> = (0..len)
                    .map(|j| [1e-8, -1.0, 3e8][j % 3] * (j as f64 + 0.1))
                    .collect();
                let mut expected = std::collections::BTreeMap::new();
                for (&c, &v) in columns.iter().zip(&values) {
                    *expected.entry(c as i32).or_insert(0.0) += v;
                }
                let mut row = RowEntries::new();
                for (&c, &v) in columns.iter().zip(&values) {
                    row.push(c, v);
                }
                let mut out_i = vec![MaybeUninit::uninit(); len];
                let mut out_d = vec![MaybeUninit::uninit(); len];
                let written = merge_row(&row, &mut out_i, &mut out_d);
                // SAFETY: `merge_row` wrote the first `written` entries.
                let got: Vec<(i32, f64)> = (0..written)
                    .map(|k| unsafe { (out_i[k].assume_init(), out_d[k].assume_init()) })
                    .collect();
                assert_eq!(
                    got,
                    expected.into_iter().collect::<Vec<_>>(),
                    "length {len}, columns below {range}"
                );
            }
        }
    }

    #[test]
    fn short_sorts_agree_with_a_comparison_sort() {
        let mut x: u64 = 11;
        for n in 0..=SHORT_ROW {
            let mut keys = [0i32; SHORT_ROW];
            for (j, key) in keys[..n].iter_mut().enumerate() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *key = ((x >> 33) as i32 & !63) | j as i32;
            }
            let mut expected = keys[..n].to_vec();
            expected.sort_unstable();
            assert_eq!(sort_short(&keys, n)[..n], expected, "length {n}");
            assert_eq!(sort_short_portable(&keys, n)[..n], expected, "length {n}");
        }
    }

    #[test]
    fn zero_values_are_skipped() {
        let mut rows = HashedRows::new(16, true);
        rows.push(b"a", 0.0);
        rows.end_row();
        assert_eq!(rows.index.len(), 0);
    }

    #[test]
    fn mean_pooling_divides_by_feature_count() {
        let mut rows = HashedRows::new(1, false);
        rows.push(b"x", 2.0);
        rows.push(b"y", 4.0);
        rows.end_row();
        rows.end_row();
        let out = pool(&rows, &[1.0, 10.0], 2, Pooling::Mean).unwrap();
        assert_eq!(out, vec![3.0, 30.0, 0.0, 0.0]);
    }

    #[test]
    fn pool_rejects_short_table() {
        let mut rows = HashedRows::new(8, false);
        rows.push(b"x", 1.0);
        rows.end_row();
        assert!(pool(&rows, &[1.0, 2.0], 2, Pooling::Sum).is_err());
    }
}
