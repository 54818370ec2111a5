//! Bindings of `peakrec_core::text`: the analyzer, the BM25 index build, and search over index
//! arrays held as numpy arrays (in memory or memory-mapped), with the GIL released around the work.

use crate::error::Result;
use crate::py_pipeline::slice;
use numpy::{IntoPyArray, PyArray1, PyUntypedArrayMethods};
use peakrec_core::text::{self, Bm25Params, Hits, IndexParts};
use peakrec_core::{with_threads, CoreError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(text_analyze, m)?)?;
    m.add_function(wrap_pyfunction!(text_analyze_document, m)?)?;
    m.add_function(wrap_pyfunction!(text_analyze_batch, m)?)?;
    m.add_function(wrap_pyfunction!(text_check_query, m)?)?;
    m.add_function(wrap_pyfunction!(text_build, m)?)?;
    m.add_class::<TextIndexCore>()?;
    Ok(())
}

/// Query tokens of `text` (NFKC, lowercase, words, CJK bigrams, `brand:`/`cat:` field tokens).
#[pyfunction]
fn text_analyze(py: Python<'_>, text: &str) -> Vec<String> {
    py.detach(|| text::analyze_query(text))
}

/// Document tokens of one item: title, brand (+ `brand:<brand>`), category path (+ `cat:<part>`).
#[pyfunction]
#[pyo3(signature = (title, brand="", category=""))]
fn text_analyze_document(py: Python<'_>, title: &str, brand: &str, category: &str) -> Vec<String> {
    py.detach(|| text::analyze_document(title, brand, category))
}

/// Document tokens of every row, in parallel.
#[pyfunction]
#[pyo3(signature = (titles, brands=None, categories=None, n_threads=None))]
fn text_analyze_batch(
    py: Python<'_>,
    titles: Vec<String>,
    brands: Option<Vec<String>>,
    categories: Option<Vec<String>>,
    n_threads: Option<usize>,
) -> Result<Vec<Vec<String>>> {
    Ok(py.detach(|| {
        with_threads(n_threads, || {
            text::analyze_documents(&titles, brands.as_deref(), categories.as_deref())
        })
        .and_then(|r| r)
    })?)
}

/// Raises `InvalidInputError` for an empty or whitespace-only query or one over 256 characters.
#[pyfunction]
fn text_check_query(query: &str) -> Result<()> {
    Ok(text::check_query(query)?)
}

/// Builds the BM25 index; returns `(arrays, avg_doc_len)` with `arrays` a dict of numpy arrays
/// named as the index files.
#[pyfunction]
#[pyo3(signature = (titles, brands=None, categories=None, k1=1.2, b=0.75, n_threads=None))]
fn text_build<'py>(
    py: Python<'py>,
    titles: Vec<String>,
    brands: Option<Vec<String>>,
    categories: Option<Vec<String>>,
    k1: f32,
    b: f32,
    n_threads: Option<usize>,
) -> Result<(Bound<'py, PyDict>, f64)> {
    let params = Bm25Params { k1, b };
    let data = py.detach(|| {
        with_threads(n_threads, || {
            text::build(&titles, brands.as_deref(), categories.as_deref(), params)
        })
        .and_then(|r| r)
    })?;
    drop(titles);
    let arrays = PyDict::new(py);
    arrays.set_item("vocab_bytes", data.vocab_bytes.into_pyarray(py))?;
    arrays.set_item("vocab_offsets", data.vocab_offsets.into_pyarray(py))?;
    arrays.set_item("postings_indptr", data.postings_indptr.into_pyarray(py))?;
    arrays.set_item("postings_docs", data.postings_docs.into_pyarray(py))?;
    arrays.set_item("postings_tf", data.postings_tf.into_pyarray(py))?;
    arrays.set_item("doc_len", data.doc_len.into_pyarray(py))?;
    arrays.set_item("doc_row", data.doc_row.into_pyarray(py))?;
    arrays.set_item("doc_norm", data.doc_norm.into_pyarray(py))?;
    arrays.set_item("term_idf", data.term_idf.into_pyarray(py))?;
    arrays.set_item("term_max_score", data.term_max_score.into_pyarray(py))?;
    arrays.set_item("block_indptr", data.block_indptr.into_pyarray(py))?;
    arrays.set_item("block_max_score", data.block_max_score.into_pyarray(py))?;
    Ok((arrays, data.avg_doc_len))
}

/// A BM25 index over numpy arrays (owned or memory-mapped); holds references, copies nothing.
#[pyclass(frozen, module = "peakrec._core")]
pub struct TextIndexCore {
    vocab_bytes: Py<PyArray1<u8>>,
    vocab_offsets: Py<PyArray1<i64>>,
    postings_indptr: Py<PyArray1<i64>>,
    postings_docs: Py<PyArray1<i32>>,
    postings_tf: Py<PyArray1<u16>>,
    doc_row: Py<PyArray1<i32>>,
    doc_norm: Py<PyArray1<f32>>,
    term_idf: Py<PyArray1<f32>>,
    term_max_score: Py<PyArray1<f32>>,
    block_indptr: Py<PyArray1<i64>>,
    block_max_score: Py<PyArray1<f32>>,
    k1: f32,
}

impl TextIndexCore {
    /// Views every array and runs `work` on the slices with the GIL released.
    fn with_parts<R: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(IndexParts<'_>) -> R + Send,
    ) -> Result<R> {
        let parts = IndexParts {
            vocab_bytes: slice(py, self.vocab_bytes.bind(py), "vocab_bytes")?,
            vocab_offsets: slice(py, self.vocab_offsets.bind(py), "vocab_offsets")?,
            postings_indptr: slice(py, self.postings_indptr.bind(py), "postings_indptr")?,
            postings_docs: slice(py, self.postings_docs.bind(py), "postings_docs")?,
            postings_tf: slice(py, self.postings_tf.bind(py), "postings_tf")?,
            doc_row: slice(py, self.doc_row.bind(py), "doc_row")?,
            doc_norm: slice(py, self.doc_norm.bind(py), "doc_norm")?,
            term_idf: slice(py, self.term_idf.bind(py), "term_idf")?,
            term_max_score: slice(py, self.term_max_score.bind(py), "term_max_score")?,
            block_indptr: slice(py, self.block_indptr.bind(py), "block_indptr")?,
            block_max_score: slice(py, self.block_max_score.bind(py), "block_max_score")?,
            k1: self.k1,
        };
        Ok(py.detach(|| work(parts)))
    }
}

type HitArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>);

fn hit_arrays(py: Python<'_>, hits: Hits) -> HitArrays<'_> {
    (hits.rows.into_pyarray(py), hits.scores.into_pyarray(py))
}

#[pymethods]
impl TextIndexCore {
    /// Wraps the index arrays, checking their lengths and offsets (O(terms)); with `verify`, also
    /// every posting (O(postings)).
    #[new]
    #[pyo3(signature = (vocab_bytes, vocab_offsets, postings_indptr, postings_docs, postings_tf,
                        doc_row, doc_norm, term_idf, term_max_score, block_indptr,
                        block_max_score, k1, verify=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        vocab_bytes: Py<PyArray1<u8>>,
        vocab_offsets: Py<PyArray1<i64>>,
        postings_indptr: Py<PyArray1<i64>>,
        postings_docs: Py<PyArray1<i32>>,
        postings_tf: Py<PyArray1<u16>>,
        doc_row: Py<PyArray1<i32>>,
        doc_norm: Py<PyArray1<f32>>,
        term_idf: Py<PyArray1<f32>>,
        term_max_score: Py<PyArray1<f32>>,
        block_indptr: Py<PyArray1<i64>>,
        block_max_score: Py<PyArray1<f32>>,
        k1: f32,
        verify: bool,
    ) -> Result<Self> {
        let index = TextIndexCore {
            vocab_bytes,
            vocab_offsets,
            postings_indptr,
            postings_docs,
            postings_tf,
            doc_row,
            doc_norm,
            term_idf,
            term_max_score,
            block_indptr,
            block_max_score,
            k1,
        };
        index.with_parts(py, |parts| {
            parts.check()?;
            if verify {
                parts.verify_postings()?;
            }
            Ok::<(), CoreError>(())
        })??;
        Ok(index)
    }

    /// Top `top_n` rows for `query` and their BM25 scores: `(int64[k], float32[k])`, k <= top_n,
    /// sorted by score descending then row ascending. `exhaustive` scores every match (no pruning).
    #[pyo3(signature = (query, top_n, exhaustive=false))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query: &str,
        top_n: usize,
        exhaustive: bool,
    ) -> Result<HitArrays<'py>> {
        text::check_query(query)?;
        let hits = self.with_parts(py, |parts| {
            parts.search_terms(&text::analyze_query(query), top_n, exhaustive)
        })?;
        Ok(hit_arrays(py, hits))
    }

    /// Like `search`, for already analysed `terms` (no query checks).
    #[pyo3(signature = (terms, top_n, exhaustive=false))]
    fn search_terms<'py>(
        &self,
        py: Python<'py>,
        terms: Vec<String>,
        top_n: usize,
        exhaustive: bool,
    ) -> Result<HitArrays<'py>> {
        let hits = self.with_parts(py, |parts| parts.search_terms(&terms, top_n, exhaustive))?;
        Ok(hit_arrays(py, hits))
    }

    /// Vocabulary id of `term`, or None.
    fn term_id(&self, py: Python<'_>, term: &str) -> Result<Option<usize>> {
        self.with_parts(py, |parts| parts.term_id(term))
    }

    #[getter]
    fn n_docs(&self, py: Python<'_>) -> usize {
        PyUntypedArrayMethods::len(self.doc_norm.bind(py))
    }

    #[getter]
    fn n_terms(&self, py: Python<'_>) -> usize {
        PyUntypedArrayMethods::len(self.term_idf.bind(py))
    }

    #[getter]
    fn n_postings(&self, py: Python<'_>) -> usize {
        PyUntypedArrayMethods::len(self.postings_docs.bind(py))
    }

    #[getter]
    fn k1(&self) -> f32 {
        self.k1
    }
}
