//! Bindings of feature hashing (`peakrec_core::hashing`): scikit-learn's `FeatureHasher` rows to
//! CSR parts, flat Arrow string columns to CSR, hashed-embedding pooling, MurmurHash3.
//!
//! String rows are read in place from Python lists and tuples (no per-name Python calls), which
//! needs the GIL held: no other thread may change a list while it is read.

use crate::error::{invalid, Result};
use numpy::{
    Element, IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use peakrec_core::hashing::{
    self, Csr, FastMod, FlatFeatures, HashedRows, NameBatch, Pooling, Value,
};
use peakrec_core::{prefetch, with_threads, CoreError};
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyIterator, PyList, PyString, PyTuple};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hash_csr, m)?)?;
    m.add_function(wrap_pyfunction!(hash_flat_csr, m)?)?;
    m.add_function(wrap_pyfunction!(hash_pool, m)?)?;
    m.add_function(wrap_pyfunction!(murmurhash3_32, m)?)?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum InputType {
    Dict,
    Pair,
    String,
}

fn parse_input_type(input_type: &str) -> Result<InputType> {
    match input_type {
        "dict" => Ok(InputType::Dict),
        "pair" => Ok(InputType::Pair),
        "string" => Ok(InputType::String),
        other => Err(invalid(format!(
            "input_type must be 'dict', 'pair' or 'string', got {other:?}"
        ))),
    }
}

/// Bytes of a feature name (str as UTF-8, or bytes as they are).
fn name_bytes<'a>(obj: &'a Bound<'_, PyAny>, row: usize) -> Result<&'a [u8]> {
    if let Some(bytes) = fast_str(obj.as_ptr()) {
        return Ok(bytes);
    }
    if obj.is_instance_of::<PyString>() {
        return Err(invalid(format!(
            "row {row}: feature name {obj} cannot be encoded as UTF-8"
        )));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    Err(invalid(format!(
        "row {row}: feature names must be str, got {}",
        type_name(obj)
    )))
}

/// UTF-8 bytes of a str without touching its reference count; `None` if not a str (or not
/// encodable). The bytes live as long as the object, which the caller keeps alive with the GIL held.
fn fast_str<'a>(obj: *mut ffi::PyObject) -> Option<&'a [u8]> {
    // SAFETY: `obj` is a live object borrowed from a container we hold while holding the GIL.
    unsafe {
        if ffi::PyUnicode_Check(obj) == 0 {
            return None;
        }
        let mut size: ffi::Py_ssize_t = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
        if data.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(std::slice::from_raw_parts(data as *const u8, size as usize))
    }
}

/// Hashes one (name, value) feature into `rows`; a str value makes the feature "name=value" with value 1.
fn push_feature(
    rows: &mut HashedRows,
    buf: &mut Vec<u8>,
    name: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    row: usize,
) -> Result<()> {
    let key = name_bytes(name, row)?;
    if let Some(text) = fast_str(value.as_ptr()) {
        buf.clear();
        buf.extend_from_slice(key);
        buf.push(b'=');
        buf.extend_from_slice(text);
        rows.push(buf, 1.0);
        return Ok(());
    }
    let v = match value.cast::<PyFloat>() {
        Ok(f) => f.value(),
        Err(_) if value.is_instance_of::<PyString>() => {
            return Err(invalid(format!(
                "row {row}: value of feature {:?} is not valid UTF-8",
                lossy(key)
            )))
        }
        Err(_) => value.extract::<f64>().map_err(|_| {
            invalid(format!(
                "row {row}: value of feature {:?} must be a number or str, got {}",
                lossy(key),
                type_name(value)
            ))
        })?,
    };
    if !v.is_finite() {
        return Err(invalid(format!(
            "row {row}: value of feature {:?} is {v}",
            lossy(key)
        )));
    }
    rows.push(key, v);
    Ok(())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

fn iter_row<'py>(sample: &Bound<'py, PyAny>, row: usize) -> Result<Bound<'py, PyIterator>> {
    sample.try_iter().map_err(|_| {
        invalid(format!(
            "row {row}: expected an iterable of features, got {}",
            type_name(sample)
        ))
    })
}

fn hash_row(
    rows: &mut HashedRows,
    buf: &mut Vec<u8>,
    sample: &Bound<'_, PyAny>,
    row: usize,
    input_type: InputType,
) -> Result<()> {
    match input_type {
        InputType::Dict => {
            let dict = sample.cast::<PyDict>().map_err(|_| {
                invalid(format!(
                    "row {row}: expected a dict of features, got {}",
                    type_name(sample)
                ))
            })?;
            for (k, v) in dict.iter() {
                push_feature(rows, buf, &k, &v, row)?;
            }
        }
        InputType::Pair => {
            for item in iter_row(sample, row)? {
                let item = item?;
                let pair = item
                    .cast::<PyTuple>()
                    .ok()
                    .filter(|t| t.len() == 2)
                    .ok_or_else(|| {
                        invalid(format!(
                            "row {row}: expected (name, value) pairs, got {}",
                            type_name(&item)
                        ))
                    })?;
                push_feature(rows, buf, &pair.get_item(0)?, &pair.get_item(1)?, row)?;
            }
        }
        InputType::String => {
            if sample.is_instance_of::<PyString>() {
                return Err(invalid(format!(
                    "row {row}: a sample can not be a single string; pass an iterable of strings"
                )));
            }
            if let Ok(list) = sample.cast::<PyList>() {
                for i in 0..list.len() {
                    // SAFETY: i < len, and the list cannot change: we hold the GIL and run no Python code.
                    let item = unsafe { ffi::PyList_GET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t) };
                    match fast_str(item) {
                        Some(name) => rows.push(name, 1.0),
                        None => rows.push(name_bytes(&list.get_item(i)?, row)?, 1.0),
                    }
                }
            } else {
                for name in iter_row(sample, row)? {
                    rows.push(name_bytes(&name?, row)?, 1.0);
                }
            }
        }
    }
    rows.end_row();
    Ok(())
}

/// Hashes every row of `raw_x` (holding the GIL: it reads Python objects).
fn hash_rows(
    raw_x: &Bound<'_, PyAny>,
    n_features: u64,
    input_type: &str,
    alternate_sign: bool,
) -> Result<HashedRows> {
    let n_features = hashing::check_n_features(n_features)?;
    let input_type = parse_input_type(input_type)?;
    let mut rows = HashedRows::new(n_features, alternate_sign);
    let mut buf = Vec::new();
    if let Ok(list) = raw_x.cast::<PyList>() {
        rows.indptr.reserve(list.len());
        for (row, sample) in list.iter().enumerate() {
            hash_row(&mut rows, &mut buf, &sample, row, input_type)?;
            if row == 0 {
                // Rows tend to be alike: size the buffers from the first one.
                rows.reserve(rows.index.len() * list.len() * 9 / 8);
            }
        }
    } else {
        let samples = raw_x.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "raw_X must be an iterable of samples, got {}",
                type_name(raw_x)
            ))
        })?;
        for (row, sample) in samples.enumerate() {
            hash_row(&mut rows, &mut buf, &sample?, row, input_type)?;
        }
    }
    Ok(rows)
}

/// Items of an exact list or tuple, read in place; `None` for anything else.
///
/// SAFETY: `obj` must be live and unchanged for as long as the slice is used.
unsafe fn seq_items<'a>(obj: *mut ffi::PyObject) -> Option<&'a [*mut ffi::PyObject]> {
    let (items, len) = if ffi::PyList_CheckExact(obj) != 0 {
        (
            (*obj.cast::<ffi::PyListObject>()).ob_item,
            ffi::PyList_GET_SIZE(obj),
        )
    } else if ffi::PyTuple_CheckExact(obj) != 0 {
        let tuple = obj.cast::<ffi::PyTupleObject>();
        ((*tuple).ob_item.as_mut_ptr(), ffi::PyTuple_GET_SIZE(obj))
    } else {
        return None;
    };
    // An empty list may have no item array at all.
    Some(if len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(items, len as usize)
    })
}

/// UTF-8 bytes of an exact `str`, read without the Python API (so a worker thread may call it):
/// ASCII in place, other text encoded into `scratch`. `None` for anything else, and for text that
/// has no UTF-8 form (lone surrogates).
///
/// SAFETY: `obj` must be live and unchanged for as long as the bytes are used.
#[inline]
unsafe fn read_str(obj: *mut ffi::PyObject, scratch: &mut Vec<u8>) -> Option<&[u8]> {
    if let Some(text) = ascii_str(obj) {
        return Some(text);
    }
    if ffi::PyUnicode_CheckExact(obj) == 0 {
        return None;
    }
    // Kind 0 is a legacy string not yet made ready (Python < 3.12): leave it to the Python API.
    let kind = ffi::PyUnicode_KIND(obj);
    if !matches!(kind, 1 | 2 | 4) {
        return None;
    }
    let (data, len) = (
        ffi::PyUnicode_DATA(obj),
        ffi::PyUnicode_GET_LENGTH(obj) as usize,
    );
    match kind {
        1 => {
            let latin1 = std::slice::from_raw_parts(data.cast::<u8>(), len);
            encode_utf8(latin1.iter().map(|&c| c as u32), scratch)
        }
        2 => {
            let ucs2 = std::slice::from_raw_parts(data.cast::<u16>(), len);
            encode_utf8(ucs2.iter().map(|&c| c as u32), scratch)
        }
        _ => {
            let ucs4 = std::slice::from_raw_parts(data.cast::<u32>(), len);
            encode_utf8(ucs4.iter().copied(), scratch)
        }
    }
}

/// The text of a compact ASCII exact `str`, in place (ASCII is its own UTF-8); `None` for any
/// other object.
///
/// SAFETY: `obj` must be live and unchanged for as long as the bytes are used.
#[inline]
unsafe fn ascii_str<'a>(obj: *mut ffi::PyObject) -> Option<&'a [u8]> {
    if ffi::PyUnicode_CheckExact(obj) == 0 || ffi::PyUnicode_KIND(obj) != 1 {
        return None;
    }
    // Only a compact ASCII str keeps its text right after the shortest header, so no byte needs
    // a look (the ascii flag has no accessor from Python 3.14).
    let data = ffi::PyUnicode_DATA(obj);
    (data == obj.cast::<ffi::PyASCIIObject>().add(1).cast()).then(|| {
        std::slice::from_raw_parts(data.cast::<u8>(), ffi::PyUnicode_GET_LENGTH(obj) as usize)
    })
}

/// UTF-8 of code points into `out`; `None` at a lone surrogate.
fn encode_utf8(chars: impl Iterator<Item = u32>, out: &mut Vec<u8>) -> Option<&[u8]> {
    out.clear();
    for c in chars {
        out.extend_from_slice(char::from_u32(c)?.encode_utf8(&mut [0; 4]).as_bytes());
    }
    Some(out)
}

/// Rows given as a list (or tuple) of lists (or tuples), with the items read in place.
struct ItemRows<'a> {
    rows: Vec<&'a [*mut ffi::PyObject]>,
    /// Items before each row (`rows.len() + 1` entries).
    starts: Vec<usize>,
}

// SAFETY: worker threads read the items (and the str they point to) only inside `hash_str_rows`,
// while the calling thread holds the GIL and waits for them: no Python code runs meanwhile, so
// nothing is changed or freed, and reading takes no reference counts.
unsafe impl Sync for ItemRows<'_> {}

impl ItemRows<'_> {
    /// Starts loading the item array of row `r + 4`, so that reading it overlaps the hashing of
    /// the rows before. (Prefetching the row's objects too cost more than it saved, measured on
    /// rows built in order, whose objects the hardware prefetcher follows.)
    #[inline]
    fn prefetch(&self, r: usize) {
        if let Some(items) = self.rows.get(r + 4) {
            prefetch(items.as_ptr());
        }
    }
}

fn item_rows<'a>(raw_x: &'a Bound<'_, PyAny>) -> Option<ItemRows<'a>> {
    // SAFETY: we hold the GIL and `raw_x` keeps the rows alive; no Python code runs while the
    // slices are used (see `ItemRows`).
    let samples = unsafe { seq_items(raw_x.as_ptr()) }?;
    let mut rows = Vec::with_capacity(samples.len());
    let mut starts = Vec::with_capacity(samples.len() + 1);
    starts.push(0);
    for (i, &sample) in samples.iter().enumerate() {
        // Each row is a cache (and often a TLB) miss: ask for them well ahead.
        if let Some(&ahead) = samples.get(i + 24) {
            prefetch(ahead);
        }
        // SAFETY: as above; `raw_x` holds a reference to each row.
        let items = unsafe { seq_items(sample) }?;
        starts.push(starts[rows.len()] + items.len());
        rows.push(items);
    }
    Some(ItemRows { rows, starts })
}

/// Canonical CSR of string rows given as lists or tuples of exact `str`, hashed on `n_threads`
/// threads while this thread holds the GIL; `None` when some row or name needs the general path
/// (another iterable, a str subclass, bytes, a name with no UTF-8 form).
fn hash_str_rows<T: Value>(
    raw_x: &Bound<'_, PyAny>,
    n_features: u32,
    alternate_sign: bool,
    n_threads: Option<usize>,
) -> Result<Option<Csr<T>>> {
    let Some(rows) = item_rows(raw_x) else {
        return Ok(None);
    };
    let (rows, modulo) = (&rows, FastMod::new(n_features));
    let fill = |r: usize, entries: &mut hashing::RowEntries<T>| {
        let items = rows.rows[r];
        rows.prefetch(r);
        // A row of ASCII names (the norm) is read in place and hashed as one batch.
        if items.len() <= NameBatch::CAPACITY {
            let mut batch = NameBatch::new();
            // SAFETY: see `ItemRows`.
            for name in items.iter().map_while(|&item| unsafe { ascii_str(item) }) {
                batch.push(name);
            }
            if batch.len() == items.len() {
                entries.push_names(&mut batch, modulo, alternate_sign);
                return Ok(());
            }
        }
        for &item in items {
            // SAFETY: see `ItemRows`. A name not readable here stops the build; the general path
            // then hashes the rows (or raises the error naming the row).
            let name = unsafe { read_str(item, &mut entries.scratch) }
                .ok_or_else(|| CoreError::InvalidInput(String::new()))?;
            let (index, sign) = hashing::bucket_and_sign(name, modulo);
            entries.push(index, T::from_f64(if alternate_sign { sign } else { 1.0 }));
        }
        Ok(())
    };
    let csr = with_threads(n_threads, || {
        hashing::build_csr(rows.rows.len(), |r| rows.starts[r], fill)
    })?;
    Ok(csr.ok())
}

/// Canonical CSR of `raw_x` in the output type `T`.
fn hash_to_csr<T: Value>(
    raw_x: &Bound<'_, PyAny>,
    n_features: u64,
    input_type: &str,
    alternate_sign: bool,
    n_threads: Option<usize>,
) -> Result<Csr<T>> {
    let py = raw_x.py();
    let checked = hashing::check_n_features(n_features)?;
    if parse_input_type(input_type)? == InputType::String {
        if let Some(csr) = hash_str_rows(raw_x, checked, alternate_sign, n_threads)? {
            return Ok(csr);
        }
    }
    let rows = hash_rows(raw_x, n_features, input_type, alternate_sign)?;
    Ok(py.detach(|| with_threads(n_threads, || hashing::to_csr::<T>(&rows)))?)
}

type CsrParts<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>);

fn csr_parts<T: Element>(py: Python<'_>, csr: Csr<T>) -> CsrParts<'_> {
    (
        indptr_array(py, csr.indptr),
        csr.indices.into_pyarray(py).into_any(),
        csr.data.into_pyarray(py).into_any(),
    )
}

/// CSR parts `(indptr, indices, data)` of the hashed rows, identical to scikit-learn's
/// `FeatureHasher.transform`: indices int32, indptr int32 (int64 past 2^31-1 entries), data
/// float64 or float32.
#[pyfunction]
#[pyo3(signature = (raw_x, n_features, input_type, alternate_sign, float32=false, n_threads=None))]
fn hash_csr<'py>(
    py: Python<'py>,
    raw_x: &Bound<'py, PyAny>,
    n_features: u64,
    input_type: &str,
    alternate_sign: bool,
    float32: bool,
    n_threads: Option<usize>,
) -> Result<CsrParts<'py>> {
    Ok(if float32 {
        csr_parts(
            py,
            hash_to_csr::<f32>(raw_x, n_features, input_type, alternate_sign, n_threads)?,
        )
    } else {
        csr_parts(
            py,
            hash_to_csr::<f64>(raw_x, n_features, input_type, alternate_sign, n_threads)?,
        )
    })
}

/// Offsets of a flat string column, as Arrow's `string` (i32) or `large_string` (i64).
#[derive(FromPyObject)]
enum OffsetArray<'py> {
    Small(PyReadonlyArray1<'py, i32>),
    Large(PyReadonlyArray1<'py, i64>),
}

/// CSR parts of rows stored flat (Arrow `list<string>` buffers): name `f` is
/// `data[offsets[f]:offsets[f+1]]`, row `r` owns names `row_indptr[r]:row_indptr[r+1]`. All the
/// work runs with the GIL released, in parallel.
#[pyfunction]
#[pyo3(signature = (data, offsets, row_indptr, n_features, alternate_sign, values=None, float32=false, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn hash_flat_csr<'py>(
    py: Python<'py>,
    data: PyReadonlyArray1<'py, u8>,
    offsets: OffsetArray<'py>,
    row_indptr: PyReadonlyArray1<'py, i64>,
    n_features: u64,
    alternate_sign: bool,
    values: Option<PyReadonlyArray1<'py, f64>>,
    float32: bool,
    n_threads: Option<usize>,
) -> Result<CsrParts<'py>> {
    let n_features = hashing::check_n_features(n_features)?;
    let contiguous = |e| invalid(format!("flat feature arrays must be C-contiguous: {e}"));
    let data = data.as_slice().map_err(contiguous)?;
    let row_indptr = row_indptr.as_slice().map_err(contiguous)?;
    let values = values
        .as_ref()
        .map(|v| v.as_slice())
        .transpose()
        .map_err(contiguous)?;
    macro_rules! run {
        ($offsets:expr, $t:ty) => {{
            let rows = FlatFeatures {
                data,
                offsets: $offsets,
                row_indptr,
                values,
            };
            let csr = py
                .detach(|| {
                    with_threads(n_threads, || {
                        hashing::hash_flat::<$t, _>(&rows, n_features, alternate_sign)
                    })
                })
                .and_then(|r| r)?;
            csr_parts(py, csr)
        }};
    }
    Ok(match (&offsets, float32) {
        (OffsetArray::Small(o), false) => run!(o.as_slice().map_err(contiguous)?, f64),
        (OffsetArray::Small(o), true) => run!(o.as_slice().map_err(contiguous)?, f32),
        (OffsetArray::Large(o), false) => run!(o.as_slice().map_err(contiguous)?, f64),
        (OffsetArray::Large(o), true) => run!(o.as_slice().map_err(contiguous)?, f32),
    })
}

fn indptr_array(py: Python<'_>, indptr: Vec<i64>) -> Bound<'_, PyAny> {
    if indptr.last().is_some_and(|&n| n > i32::MAX as i64) {
        indptr.into_pyarray(py).into_any()
    } else {
        indptr
            .into_iter()
            .map(|v| v as i32)
            .collect::<Vec<_>>()
            .into_pyarray(py)
            .into_any()
    }
}

/// Pooled embeddings `[rows, dim]` float32 of the hashed rows over `table` `[n_features, dim]`.
#[pyfunction]
#[pyo3(signature = (raw_x, n_features, input_type, alternate_sign, table, mode="sum", n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn hash_pool<'py>(
    py: Python<'py>,
    raw_x: &Bound<'py, PyAny>,
    n_features: u64,
    input_type: &str,
    alternate_sign: bool,
    table: PyReadonlyArray2<'py, f32>,
    mode: &str,
    n_threads: Option<usize>,
) -> Result<Bound<'py, PyArray2<f32>>> {
    let mode = match mode {
        "sum" => Pooling::Sum,
        "mean" => Pooling::Mean,
        other => {
            return Err(invalid(format!(
                "mode must be 'sum' or 'mean', got {other:?}"
            )))
        }
    };
    let [n_buckets, dim] = [table.shape()[0], table.shape()[1]];
    if n_buckets as u64 != n_features {
        return Err(invalid(format!(
            "table has {n_buckets} rows but n_features is {n_features}"
        )));
    }
    let table_slice = table
        .as_slice()
        .map_err(|_| invalid("table must be a C-contiguous float32 array"))?;
    let rows = hash_rows(raw_x, n_features, input_type, alternate_sign)?;
    let n_rows = rows.n_rows();
    let pooled = py
        .detach(|| with_threads(n_threads, || hashing::pool(&rows, table_slice, dim, mode)))
        .and_then(|r| r)?;
    Ok(pooled.into_pyarray(py).reshape([n_rows, dim])?)
}

/// MurmurHash3 (x86, 32-bit) of a str (UTF-8) or bytes; signed like scikit-learn unless `positive`.
#[pyfunction]
#[pyo3(signature = (key, seed=0, positive=false))]
fn murmurhash3_32(key: &Bound<'_, PyAny>, seed: u32, positive: bool) -> Result<i64> {
    let h = hashing::murmurhash3_32(name_bytes(key, 0)?, seed);
    Ok(if positive { h as i64 } else { h as i32 as i64 })
}
