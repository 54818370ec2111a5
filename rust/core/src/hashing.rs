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

/// Up to `SHORT_ROW` feature names, hashed together (eight at a time where the CPU has AVX2).
// In declared order: in Rust's order, setting the two counts became zeroing 272 bytes around them.
#[repr(C)]
pub struct NameBatch<'a> {
    len: usize,
    /// Bit `k` is set when name `k` is long.
    long_names: u64,
    /// Names `0..len` (and, when hashed, lanes up to the next multiple of eight) are set.
    ptrs: [MaybeUninit<*const u8>; SHORT_ROW],
    /// Lengths, 0 for names longer than `LANE_BYTES` (hashed when pushed, into `long`).
    lens: [MaybeUninit<u32>; SHORT_ROW],
    long: [MaybeUninit<u32>; SHORT_ROW],
    names: std::marker::PhantomData<&'a [u8]>,
}

/// Names longer than this are hashed one at a time: the eight lanes run as long as the longest.
const LANE_BYTES: usize = 64;

/// What empty names and unused lanes point to: 16 readable bytes.
#[repr(align(16))]
struct NoBytes([u8; 16]);
static NO_BYTES: NoBytes = NoBytes([0; 16]);

impl<'a> NameBatch<'a> {
    pub const CAPACITY: usize = SHORT_ROW;

    pub fn new() -> Self {
        NameBatch {
            ptrs: [MaybeUninit::uninit(); SHORT_ROW],
            lens: [MaybeUninit::uninit(); SHORT_ROW],
            long: [MaybeUninit::uninit(); SHORT_ROW],
            long_names: 0,
            len: 0,
            names: std::marker::PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == SHORT_ROW
    }

    /// Adds a name (the batch must not be full).
    #[inline]
    pub fn push(&mut self, name: &'a [u8]) {
        let k = self.len;
        if name.is_empty() || name.len() > LANE_BYTES {
            self.ptrs[k].write(NO_BYTES.0.as_ptr());
            self.lens[k].write(0);
            if !name.is_empty() {
                self.long[k].write(murmurhash3_32(name, 0));
                self.long_names |= 1 << k;
            }
        } else {
            self.ptrs[k].write(name.as_ptr());
            self.lens[k].write(name.len() as u32);
        }
        self.len = k + 1;
    }

    /// MurmurHash3 (seed 0) of each name into `out` (in order), emptying the batch.
    fn take_hashes(&mut self, out: &mut [u32; SHORT_ROW]) {
        let n = std::mem::take(&mut self.len);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.hash_avx2(n, out) };
            self.take_long(out);
            return;
        }
        for (k, h) in out[..n].iter_mut().enumerate() {
            // SAFETY: names `0..n` are set, and readable as above.
            let name = unsafe {
                let len = self.lens[k].assume_init() as usize;
                std::slice::from_raw_parts(self.ptrs[k].assume_init(), len)
            };
            *h = murmurhash3_32(name, 0);
        }
        self.take_long(out);
    }

    /// MurmurHash3 of names `0..n`, eight at a time (one function, so that the hashing inlines).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn hash_avx2(&mut self, n: usize, out: &mut [u32; SHORT_ROW]) {
        // Lanes past the names hash nothing.
        let lanes = n.next_multiple_of(8);
        self.ptrs[n..lanes].fill(MaybeUninit::new(NO_BYTES.0.as_ptr()));
        self.lens[n..lanes].fill(MaybeUninit::new(0));
        for at in (0..lanes).step_by(8) {
            // SAFETY: lanes `at..at + 8` are set (just above); each pointer has `lens` bytes that
            // `'a` keeps readable (or is `NO_BYTES`, with 16).
            let hashes = murmurhash3_32_x8(
                &*self.ptrs[at..at + 8].as_ptr().cast(),
                &*self.lens[at..at + 8].as_ptr().cast(),
            );
            out[at..at + 8].copy_from_slice(&hashes);
        }
    }

    /// Puts the long names' hashes in their places.
    fn take_long(&mut self, out: &mut [u32; SHORT_ROW]) {
        let mut long = std::mem::take(&mut self.long_names);
        while long != 0 {
            let k = long.trailing_zeros() as usize;
            // SAFETY: `push` set `long[k]` when it set bit `k`.
            out[k] = unsafe { self.long[k].assume_init() };
            long &= long - 1;
        }
    }
}

impl Default for NameBatch<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// MurmurHash3 (seed 0) of eight names, one per 32-bit lane. Each 16 bytes
/// of the names are loaded and transposed into four vectors of one 4-byte block per name; a lane
/// takes a block only while the block is whole, and keeps its first partial block (the tail)
/// aside, so every lane ends with the state of the scalar hash.
///
/// SAFETY: each pointer must have `lens` readable bytes, and at least one (an empty lane points
/// at `NO_BYTES`): up to 16 bytes from a name's start are read, past its end only within the
/// page of its first byte. Only the first `LANE_BYTES + 1` bytes of a lane count.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn murmurhash3_32_x8(ptrs: &[*const u8; 8], lens: &[u32; 8]) -> [u32; 8] {
    use std::arch::x86_64::*;
    let rotl13 = |x| _mm256_or_si256(_mm256_slli_epi32::<13>(x), _mm256_srli_epi32::<19>(x));
    let mix = |k| {
        let k = _mm256_mullo_epi32(k, _mm256_set1_epi32(0xcc9e_2d51_u32 as i32));
        let k = _mm256_or_si256(_mm256_slli_epi32::<15>(k), _mm256_srli_epi32::<17>(k));
        _mm256_mullo_epi32(k, _mm256_set1_epi32(0x1b87_3593))
    };
    let len = _mm256_loadu_si256(lens.as_ptr().cast());
    let whole_blocks = _mm256_srli_epi32::<2>(len);
    let (mut h, mut tail) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut absorb = |offset: usize, part: [__m128i; 8]| {
        let (r0, r1) = (
            _mm256_set_m128i(part[4], part[0]),
            _mm256_set_m128i(part[5], part[1]),
        );
        let (r2, r3) = (
            _mm256_set_m128i(part[6], part[2]),
            _mm256_set_m128i(part[7], part[3]),
        );
        let (t0, t1) = (_mm256_unpacklo_epi32(r0, r1), _mm256_unpackhi_epi32(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_epi32(r2, r3), _mm256_unpackhi_epi32(r2, r3));
        let blocks = [
            _mm256_unpacklo_epi64(t0, t2),
            _mm256_unpackhi_epi64(t0, t2),
            _mm256_unpacklo_epi64(t1, t3),
            _mm256_unpackhi_epi64(t1, t3),
        ];
        for (b, block) in blocks.into_iter().enumerate() {
            let index = _mm256_set1_epi32((offset / 4 + b) as i32);
            let next = rotl13(_mm256_xor_si256(h, mix(block)));
            let next = _mm256_add_epi32(
                _mm256_add_epi32(next, _mm256_slli_epi32::<2>(next)),
                _mm256_set1_epi32(0xe654_6b64_u32 as i32),
            );
            h = _mm256_blendv_epi8(h, next, _mm256_cmpgt_epi32(whole_blocks, index));
            tail = _mm256_blendv_epi8(tail, block, _mm256_cmpeq_epi32(whole_blocks, index));
        }
    };
    let long = _mm256_cmpgt_epi32(len, _mm256_set1_epi32(16));
    if _mm256_testz_si256(long, long) == 1 && ptrs.iter().all(|&p| p as usize % 4096 <= 4096 - 16) {
        absorb(0, std::array::from_fn(|i| load16_in_page(ptrs[i])));
    } else {
        let longest = lens.iter().copied().max().unwrap_or(0) as usize;
        for offset in (0..longest).step_by(16) {
            let left = |i: usize| lens[i] as isize - offset as isize;
            absorb(
                offset,
                std::array::from_fn(|i| load16(ptrs[i], left(i), offset)),
            );
        }
    }
    // Keep the tail's len % 4 low bytes: shifting by 32 (no tail) clears the lane.
    let shift = _mm256_sub_epi32(
        _mm256_set1_epi32(32),
        _mm256_slli_epi32::<3>(_mm256_and_si256(len, _mm256_set1_epi32(3))),
    );
    tail = _mm256_srlv_epi32(_mm256_sllv_epi32(tail, shift), shift);
    h = _mm256_xor_si256(_mm256_xor_si256(h, mix(tail)), len);
    h = _mm256_xor_si256(h, _mm256_srli_epi32::<16>(h));
    h = _mm256_mullo_epi32(h, _mm256_set1_epi32(0x85eb_ca6b_u32 as i32));
    h = _mm256_xor_si256(h, _mm256_srli_epi32::<13>(h));
    h = _mm256_mullo_epi32(h, _mm256_set1_epi32(0xc2b2_ae35_u32 as i32));
    h = _mm256_xor_si256(h, _mm256_srli_epi32::<16>(h));
    let mut hashes = [0u32; 8];
    _mm256_storeu_si256(hashes.as_mut_ptr().cast(), h);
    hashes
}

/// 16 bytes of a name from `offset`, of which `left` are its own (zeros when none); the bytes
/// past its end are garbage that the hash ignores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn load16(name: *const u8, left: isize, offset: usize) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    if left <= 0 {
        return _mm_setzero_si128();
    }
    let ptr = name.add(offset);
    if left >= 16 {
        return _mm_loadu_si128(ptr.cast());
    }
    if (ptr as usize) % 4096 <= 4096 - 16 {
        return load16_in_page(ptr);
    }
    let mut bytes = [0u8; 16];
    std::ptr::copy_nonoverlapping(ptr, bytes.as_mut_ptr(), left as usize);
    _mm_loadu_si128(bytes.as_ptr().cast())
}

/// The 16 bytes at `ptr`, all in the 4 KiB page of its first byte, which is readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load16_in_page(ptr: *const u8) -> std::arch::x86_64::__m128i {
    // Memory is mapped in whole pages, so bytes past a name in its own page can be read without
    // a fault. They lie outside what the caller lent us, so they are read by an asm load, of
    // which the compiler assumes nothing.
    let v;
    std::arch::asm!(
        "vmovdqu {v}, [{ptr}]",
        ptr = in(reg) ptr,
        v = out(xmm_reg) v,
        options(pure, readonly, nostack, preserves_flags)
    );
    v
}

/// Bucket and sign (+1 or -1) of a feature name, as scikit-learn computes them.
#[inline]
pub fn bucket_and_sign(name: &[u8], n_features: FastMod) -> (u32, f64) {
    bucket_and_sign_of(murmurhash3_32(name, 0), n_features)
}

/// Bucket and sign of a name from its MurmurHash3 (seed 0).
#[inline]
pub fn bucket_and_sign_of(h: u32, n_features: FastMod) -> (u32, f64) {
    let h = h as i32;
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
                    let mut batch = NameBatch::new();
                    for f in names {
                        batch.push(name(f));
                        if batch.is_full() {
                            entries.push_names(&mut batch, modulo, alternate_sign);
                        }
                    }
                    entries.push_names(&mut batch, modulo, alternate_sign);
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
    /// Set by `push_names` for a row of names alone: entry `j` is `keys[j]` (its column above
    /// its position, as `merge_row` sorts them), with value -1 where bit `j` of `negative` is set
    /// and 1 elsewhere. `columns` and `values` are then unused.
    keyed: bool,
    keys: [i32; SHORT_ROW],
    negative: u64,
    /// Room for the row's hashes and sorted keys, kept between rows (never cleared).
    hashes: [u32; SHORT_ROW],
    /// Longer than a row, so that its keys can be read one place on in blocks of eight.
    sorted: [i32; SHORT_ROW + 8],
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
            keyed: false,
            keys: [0; SHORT_ROW],
            negative: 0,
            hashes: [0; SHORT_ROW],
            sorted: [0; SHORT_ROW + 8],
            scratch: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, column: u32, value: T) {
        if self.keyed {
            self.unkey();
        }
        if self.len < SHORT_ROW {
            self.columns[self.len] = column;
            self.values[self.len] = value;
        } else {
            self.more.push((column, value));
        }
        self.len += 1;
    }

    /// Turns a row of names kept as keys into entries, for more to be pushed.
    #[cold]
    fn unkey(&mut self) {
        self.keyed = false;
        for (j, &key) in self.keys[..self.len].iter().enumerate() {
            self.columns[j] = (key >> 6) as u32;
            let negative = self.negative >> j & 1 == 1;
            self.values[j] = T::from_f64(if negative { -1.0 } else { 1.0 });
        }
    }

    /// Pushes a batch of names, each with value 1 (signed if `alternate_sign`), and empties it.
    pub fn push_names(&mut self, names: &mut NameBatch, modulo: FastMod, alternate_sign: bool) {
        let n = names.len();
        names.take_hashes(&mut self.hashes);
        // The usual power-of-two `n_features` takes its buckets and keys eight at a time.
        #[cfg(target_arch = "x86_64")]
        if self.len == 0
            && modulo.d.is_power_of_two()
            && modulo.d <= 1 << 25
            && std::is_x86_feature_detected!("avx2")
        {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.key_names(n, modulo.d - 1, alternate_sign) };
            return;
        }
        for j in 0..n {
            let (index, sign) = bucket_and_sign_of(self.hashes[j], modulo);
            self.push(index, T::from_f64(if alternate_sign { sign } else { 1.0 }));
        }
    }

    /// Sets the row to `n` names of MurmurHash3 `hashes` and bucket mask `mask` (below 2^25).
    /// `hashes` must hold the names rounded up to a multiple of eight, as `take_hashes` leaves it.
    /// A power-of-two `n_features` needs no special case for -2^31: its bucket is 0 either way.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn key_names(&mut self, n: usize, mask: u32, alternate_sign: bool) {
        use std::arch::x86_64::*;
        let mut negative = 0u64;
        for at in (0..n).step_by(8) {
            let h = _mm256_loadu_si256(self.hashes[at..].as_ptr().cast());
            let bucket = _mm256_and_si256(_mm256_abs_epi32(h), _mm256_set1_epi32(mask as i32));
            let position = _mm256_add_epi32(
                _mm256_set1_epi32(at as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            let key = _mm256_or_si256(_mm256_slli_epi32::<6>(bucket), position);
            _mm256_storeu_si256(self.keys[at..].as_mut_ptr().cast(), key);
            negative |= (_mm256_movemask_ps(_mm256_castsi256_ps(h)) as u64) << at;
        }
        let names = if n == 0 {
            0
        } else {
            u64::MAX >> (SHORT_ROW - n)
        };
        self.negative = if alternate_sign { negative & names } else { 0 };
        (self.len, self.keyed) = (n, true);
    }

    fn clear(&mut self) {
        (self.len, self.keyed) = (0, false);
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
                let written = merge_row(&mut row, &mut out_i[at..], &mut out_d[at..]);
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
    row: &mut RowEntries<T>,
    out_i: &mut [MaybeUninit<i32>],
    out_d: &mut [MaybeUninit<T>],
) -> usize {
    let n = row.len;
    if row.keyed {
        let sorted = (&mut row.sorted[..SHORT_ROW]).try_into().unwrap();
        sort_short(&row.keys, n, sorted);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && out_i.len().min(out_d.len()) >= n.next_multiple_of(8)
        {
            // SAFETY: the CPU has AVX2, and the outputs have room for whole blocks of eight.
            if unsafe { write_units_avx2(&row.sorted, n, row.negative, out_i, out_d) } {
                return n;
            }
        }
        let (one, minus_one) = (T::from_f64(1.0), T::from_f64(-1.0));
        let value = |j: usize| {
            if row.negative >> j & 1 == 0 {
                one
            } else {
                minus_one
            }
        };
        let entries = row.sorted[..n]
            .iter()
            .map(|&key| ((key >> 6) as u32, key as usize & 63));
        return write_merged(entries, value, out_i, out_d);
    }
    if n <= SHORT_ROW {
        let columns = &row.columns[..n];
        if columns.iter().fold(0, |high, &c| high | c) < 1 << 25 {
            for (j, (key, &c)) in row.keys.iter_mut().zip(columns).enumerate() {
                *key = (c << 6 | j as u32) as i32;
            }
            let sorted = (&mut row.sorted[..SHORT_ROW]).try_into().unwrap();
            sort_short(&row.keys, n, sorted);
            let entries = row.sorted[..n]
                .iter()
                .map(|&key| ((key >> 6) as u32, key as usize & 63));
            return write_merged(entries, |j| row.values[j], out_i, out_d);
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
    write_merged(entries, |j| values[j], out_i, out_d)
}

/// Writes (column, position) pairs sorted by column, summing the values of equal columns.
#[inline(always)]
fn write_merged<T: Value>(
    mut entries: impl Iterator<Item = (u32, usize)>,
    value: impl Fn(usize) -> T,
    out_i: &mut [MaybeUninit<i32>],
    out_d: &mut [MaybeUninit<T>],
) -> usize {
    let Some((mut column, j)) = entries.next() else {
        return 0;
    };
    let (mut sum, mut at) = (value(j), 0);
    for (c, j) in entries {
        if c == column {
            sum += value(j);
            continue;
        }
        out_i[at].write(column as i32);
        out_d[at].write(sum);
        at += 1;
        (column, sum) = (c, value(j));
    }
    out_i[at].write(column as i32);
    out_d[at].write(sum);
    at + 1
}

/// Writes the `n` sorted keys of a row of names eight at a time: each key's column, and 1 or -1
/// by bit `position` of `negative`. False if two keys share a column (to be summed, by
/// `write_merged`). Whole blocks of eight are written and read: the outputs must have room for
/// `n` rounded up to eight.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn write_units_avx2<T: Value>(
    sorted: &[i32; SHORT_ROW + 8],
    n: usize,
    negative: u64,
    out_i: &mut [MaybeUninit<i32>],
    out_d: &mut [MaybeUninit<T>],
) -> bool {
    use std::arch::x86_64::*;
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let (low, high) = (
        _mm256_set1_epi32(negative as i32),
        _mm256_set1_epi32((negative >> 32) as i32),
    );
    // The bit patterns of 1 and of -1 in `T` (f64 or f32), and which bits differ.
    const { assert!(matches!(std::mem::size_of::<T>(), 4 | 8)) };
    let bits = |v: T| match std::mem::size_of::<T>() {
        8 => std::mem::transmute_copy::<T, i64>(&v),
        _ => std::mem::transmute_copy::<T, i32>(&v) as i64,
    };
    let (one, flip) = (
        bits(T::from_f64(1.0)),
        bits(T::from_f64(1.0)) ^ bits(T::from_f64(-1.0)),
    );
    for at in (0..n).step_by(8) {
        let key = _mm256_loadu_si256(sorted[at..].as_ptr().cast());
        let next = _mm256_loadu_si256(sorted[at + 1..].as_ptr().cast());
        let column = _mm256_srai_epi32::<6>(key);
        let repeats = _mm256_and_si256(
            _mm256_cmpeq_epi32(column, _mm256_srai_epi32::<6>(next)),
            _mm256_cmpgt_epi32(_mm256_set1_epi32((n - 1 - at) as i32), lane),
        );
        if _mm256_testz_si256(repeats, repeats) == 0 {
            return false;
        }
        _mm256_storeu_si256(out_i[at..].as_mut_ptr().cast(), column);
        // Bit `position` of `negative`: a shift by 32 or more gives 0.
        let position = _mm256_and_si256(key, _mm256_set1_epi32(63));
        let bit = _mm256_or_si256(
            _mm256_srlv_epi32(low, position),
            _mm256_srlv_epi32(high, _mm256_sub_epi32(position, _mm256_set1_epi32(32))),
        );
        let minus = _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_and_si256(bit, _mm256_set1_epi32(1)),
        );
        let out = out_d[at..].as_mut_ptr().cast::<__m256i>();
        if std::mem::size_of::<T>() == 8 {
            for (half, minus) in [
                _mm256_cvtepi32_epi64(_mm256_castsi256_si128(minus)),
                _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(minus)),
            ]
            .into_iter()
            .enumerate()
            {
                let value = _mm256_xor_si256(
                    _mm256_set1_epi64x(one),
                    _mm256_and_si256(minus, _mm256_set1_epi64x(flip)),
                );
                _mm256_storeu_si256(out.add(half), value);
            }
        } else {
            let value = _mm256_xor_si256(
                _mm256_set1_epi32(one as i32),
                _mm256_and_si256(minus, _mm256_set1_epi32(flip as i32)),
            );
            _mm256_storeu_si256(out, value);
        }
    }
    true
}

/// Puts the first `n` of `keys` (unique, not negative) in `sorted` in ascending order, by rank:
/// a key's place is the count of smaller keys, counted for eight keys at once with one vector
/// compare per other key, where a comparison sort mispredicts on nearly every step for random
/// columns.
fn sort_short(keys: &[i32; SHORT_ROW], n: usize, sorted: &mut [i32; SHORT_ROW]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { sort_short_avx2(keys, n, sorted) };
    }
    sort_short_portable(keys, n, sorted)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sort_short_avx2(keys: &[i32; SHORT_ROW], n: usize, sorted: &mut [i32; SHORT_ROW]) {
    // Up to four blocks share each pass over the other keys (and its broadcasts).
    let blocks = n.div_ceil(8);
    for first in (0..blocks).step_by(4) {
        match blocks - first {
            1 => rank_blocks_avx2::<1>(keys, n, first, sorted),
            2 => rank_blocks_avx2::<2>(keys, n, first, sorted),
            3 => rank_blocks_avx2::<3>(keys, n, first, sorted),
            _ => rank_blocks_avx2::<4>(keys, n, first, sorted),
        }
    }
}

/// Ranks blocks `first..first + G` of the first `n` keys and places them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn rank_blocks_avx2<const G: usize>(
    keys: &[i32; SHORT_ROW],
    n: usize,
    first: usize,
    sorted: &mut [i32; SHORT_ROW],
) {
    use std::arch::x86_64::*;
    let block: [__m256i; G] =
        std::array::from_fn(|g| _mm256_loadu_si256(keys[(first + g) * 8..].as_ptr().cast()));
    let mut counts = [_mm256_setzero_si256(); G];
    for &other in &keys[..n] {
        let other = _mm256_set1_epi32(other);
        for (count, &block) in counts.iter_mut().zip(&block) {
            // The compare gives -1 where `other` is smaller.
            *count = _mm256_sub_epi32(*count, _mm256_cmpgt_epi32(block, other));
        }
    }
    for (g, count) in counts.into_iter().enumerate() {
        let mut ranks = [0i32; 8];
        _mm256_storeu_si256(ranks.as_mut_ptr().cast(), count);
        place_by_rank(keys, first + g, n, &ranks, sorted);
    }
}

/// The same ranks in plain code (the compiler vectorises it less well: as reductions).
fn sort_short_portable(keys: &[i32; SHORT_ROW], n: usize, sorted: &mut [i32; SHORT_ROW]) {
    for (b, block) in keys.chunks_exact(8).take(n.div_ceil(8)).enumerate() {
        // Counted in a local so the eight counts stay in registers across the loop.
        let mut ranks = [0i32; 8];
        for &other in &keys[..n] {
            for (count, &key) in ranks.iter_mut().zip(block) {
                *count += (other < key) as i32;
            }
        }
        place_by_rank(keys, b, n, &ranks, sorted);
    }
}

/// Puts block `b` of the first `n` keys where their ranks say.
#[inline(always)]
fn place_by_rank(
    keys: &[i32; SHORT_ROW],
    b: usize,
    n: usize,
    ranks: &[i32; 8],
    sorted: &mut [i32; SHORT_ROW],
) {
    for (&key, &rank) in keys[b * 8..n.min(b * 8 + 8)].iter().zip(ranks) {
        sorted[rank as usize] = key;
    }
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
                let written = merge_row(&mut row, &mut out_i, &mut out_d);
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

    /// Names of every length up to 80 bytes, some ending in the last bytes of a 4 KiB page (so
    /// the vector loads take their copying path), some starting there.
    fn names_at_page_ends(buffer: &mut Vec<u8>) -> Vec<std::ops::Range<usize>> {
        buffer.clear();
        buffer.resize(64 * 4096, 0);
        let base = buffer.as_ptr() as usize;
        let page = |p: usize| (p * 4096).next_multiple_of(4096) - base % 4096;
        let mut x: u64 = 3;
        for b in buffer.iter_mut() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (x >> 56) as u8;
        }
        let mut ranges = Vec::new();
        for len in 0..=80 {
            let end = page(len % 60 + 1);
            ranges.push(end - len..end);
            ranges.push(end - len.min(15)..end - len.min(15) + len);
            ranges.push(end + 7..end + 7 + len);
        }
        ranges
    }

    #[test]
    fn name_batches_hash_like_the_scalar_hash() {
        let mut buffer = Vec::new();
        let ranges = names_at_page_ends(&mut buffer);
        let names: Vec<&[u8]> = ranges.iter().map(|r| &buffer[r.clone()]).collect();
        for size in [1, 7, 8, 9, 20, SHORT_ROW] {
            for chunk in names.chunks(size) {
                let mut batch = NameBatch::new();
                for &name in chunk {
                    batch.push(name);
                }
                let mut hashes = [0; SHORT_ROW];
                batch.take_hashes(&mut hashes);
                assert!(batch.is_empty());
                for (name, &h) in chunk.iter().zip(&hashes) {
                    assert_eq!(h, murmurhash3_32(name, 0), "{} bytes", name.len());
                }
            }
        }
    }

    #[test]
    fn rows_of_names_merge_like_pushed_entries() {
        let mut buffer = Vec::new();
        let ranges = names_at_page_ends(&mut buffer);
        let pool: Vec<&[u8]> = ranges.iter().map(|r| &buffer[r.clone()]).collect();
        let mut x: u64 = 5;
        for n_features in [16, 1 << 20, 1 << 25, 1 << 26, 1_000_003] {
            let modulo = FastMod::new(n_features);
            for alternate_sign in [true, false] {
                for (len, repeats) in [0, 1, 8, 20, 63, 64, 65, 130]
                    .into_iter()
                    .flat_map(|len| [(len, true), (len, false)])
                {
                    // Names drawn from 40 repeat within a row (so columns repeat at any
                    // `n_features`); the others are distinct (pool names 3 and on are not empty).
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let row: Vec<&[u8]> = (0..len)
                        .map(|k| match repeats {
                            true => pool[(x >> 33) as usize % (k + 1) % 40],
                            false => pool[3 + ((x >> 33) as usize + 7 * k) % (pool.len() - 3)],
                        })
                        .collect();
                    let (mut by_names, mut by_entries) = (RowEntries::new(), RowEntries::new());
                    for names in row.chunks(NameBatch::CAPACITY) {
                        let mut batch = NameBatch::new();
                        for &name in names {
                            batch.push(name);
                        }
                        by_names.push_names(&mut batch, modulo, alternate_sign);
                    }
                    for &name in &row {
                        let (index, sign) = bucket_and_sign(name, modulo);
                        by_entries.push(index, if alternate_sign { sign } else { 1.0 });
                    }
                    let merged = |row: &mut RowEntries<f64>| {
                        // Room past the row, as a row has in the middle of a batch.
                        let mut out_i = vec![MaybeUninit::uninit(); len + 8];
                        let mut out_d = vec![MaybeUninit::uninit(); len + 8];
                        let written = merge_row(row, &mut out_i, &mut out_d);
                        // SAFETY: `merge_row` wrote the first `written` entries.
                        (0..written)
                            .map(|k| unsafe { (out_i[k].assume_init(), out_d[k].assume_init()) })
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(
                        merged(&mut by_names),
                        merged(&mut by_entries),
                        "{len} names (repeating: {repeats}), n_features {n_features}"
                    );
                }
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
            let mut sorted = [0; SHORT_ROW];
            sort_short(&keys, n, &mut sorted);
            assert_eq!(sorted[..n], expected, "length {n}");
            sort_short_portable(&keys, n, &mut sorted);
            assert_eq!(sorted[..n], expected, "length {n}");
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
