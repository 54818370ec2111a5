//! Feature hashing compatible bit for bit with scikit-learn's `FeatureHasher`.
//!
//! A feature is a UTF-8 name and a value. Its bucket and sign come from MurmurHash3 (x86, 32-bit,
//! seed 0) read as a signed integer, exactly as `sklearn.feature_extraction._hashing_fast` does.

use crate::error::{invalid, Result};
use rayon::prelude::*;

/// MurmurHash3_x86_32 of `key` with `seed`.
pub fn murmurhash3_32(key: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k |= (b as u32) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
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

/// Bucket and sign (+1 or -1) of a feature name, as scikit-learn computes them.
#[inline]
pub fn bucket_and_sign(name: &[u8], n_features: u32) -> (u32, f64) {
    let h = murmurhash3_32(name, 0) as i32;
    let index = if h == i32::MIN {
        // abs(-2^31) overflows; scikit-learn defines the bucket as below.
        (i32::MAX as u32 - (n_features - 1)) % n_features
    } else {
        h.unsigned_abs() % n_features
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
    n_features: u32,
    alternate_sign: bool,
}

impl HashedRows {
    pub fn new(n_features: u32, alternate_sign: bool) -> Self {
        HashedRows {
            indptr: vec![0],
            index: Vec::new(),
            value: Vec::new(),
            n_features,
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
    let n = rows.n_rows();
    let chunks: Vec<(Vec<i32>, Vec<T>, Vec<usize>)> = (0..n)
        .into_par_iter()
        .step_by(ROWS_PER_TASK)
        .map(|start| {
            let end = (start + ROWS_PER_TASK).min(n);
            let len = rows.indptr[end] - rows.indptr[start];
            let mut indices = Vec::with_capacity(len);
            let mut data = Vec::with_capacity(len);
            let mut row_nnz = Vec::with_capacity(end - start);
            let mut pairs: Vec<(u32, T)> = Vec::new();
            for r in start..end {
                let span = rows.indptr[r]..rows.indptr[r + 1];
                pairs.clear();
                pairs.extend(
                    rows.index[span.clone()]
                        .iter()
                        .zip(&rows.value[span])
                        .map(|(&i, &v)| (i, T::from_f64(v))),
                );
                pairs.sort_by_key(|p| p.0);
                let before = indices.len();
                for &(i, v) in &pairs {
                    if indices.len() > before && *indices.last().unwrap() == i as i32 {
                        *data.last_mut().unwrap() += v;
                    } else {
                        indices.push(i as i32);
                        data.push(v);
                    }
                }
                row_nnz.push(indices.len() - before);
            }
            (indices, data, row_nnz)
        })
        .collect();
    let total: usize = chunks.iter().map(|c| c.0.len()).sum();
    let mut csr = Csr {
        indptr: Vec::with_capacity(n + 1),
        indices: Vec::with_capacity(total),
        data: Vec::with_capacity(total),
    };
    csr.indptr.push(0);
    for (indices, data, row_nnz) in chunks {
        for nnz in row_nnz {
            let last = *csr.indptr.last().unwrap();
            csr.indptr.push(last + nnz as i64);
        }
        csr.indices.extend_from_slice(&indices);
        csr.data.extend_from_slice(&data);
    }
    csr
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
