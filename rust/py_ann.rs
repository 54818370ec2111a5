//! Bindings of the filtered HNSW search (`peakrec_core::hnsw`) over a FAISS index's own arrays.

use crate::error::{invalid, Result};
use crate::py_pipeline::{eligibility, kept_args, slice, Catalog, KeptArgs, Rules, ScoredRows};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyUntypedArrayMethods};
use peakrec_core::hnsw::{All, Graph, Unaligned, Value};
use peakrec_core::kept;
use peakrec_core::lists::{self, Lists, Probe};
use pyo3::prelude::*;

/// A FAISS `IndexHNSWFlat`'s graph and vectors, viewed in place (see `peakrec.retrieval.hnsw`):
/// `neighbors` (int32), `offsets` (uint64), `levels` (int32) and `vectors` (float32, `dim` a row)
/// as their bytes, at whatever alignment FAISS's memory map left them.
#[pyclass(frozen, module = "peakrec._core")]
pub struct HnswGraph {
    neighbors: Py<PyArray1<u8>>,
    offsets: Py<PyArray1<u8>>,
    cum_neighbors: Py<PyArray1<i32>>,
    levels: Py<PyArray1<u8>>,
    vectors: Py<PyArray1<u8>>,
    dim: usize,
    half: Option<Py<PyArray2<u16>>>,
    entry_point: i32,
    max_level: i32,
    inner_product: bool,
}

impl HnswGraph {
    fn graph<'a>(&'a self, py: Python<'a>) -> Result<Graph<'a>> {
        let half = self
            .half
            .as_ref()
            .map(|h| slice(py, h.bind(py), "hnsw half-precision vectors"))
            .transpose()?;
        Ok(Graph {
            neighbors: packed(py, &self.neighbors, "neighbors")?,
            offsets: packed(py, &self.offsets, "offsets")?,
            cum_neighbors: slice(py, self.cum_neighbors.bind(py), "cum_neighbors")?,
            levels: packed(py, &self.levels, "levels")?,
            entry_point: self.entry_point,
            max_level: self.max_level,
            vectors: packed(py, &self.vectors, "vectors")?,
            half,
            dim: self.dim,
            inner_product: self.inner_product,
        })
    }
}

fn packed<'a, T: Value>(
    py: Python<'a>,
    bytes: &'a Py<PyArray1<u8>>,
    name: &str,
) -> Result<Unaligned<'a, T>> {
    Ok(Unaligned::new(slice(py, bytes.bind(py), name)?)?)
}

#[pymethods]
impl HnswGraph {
    /// Checks every list range and neighbour id once (a pass over the graph), so searches
    /// never read outside the arrays.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        neighbors: Py<PyArray1<u8>>,
        offsets: Py<PyArray1<u8>>,
        cum_neighbors: Py<PyArray1<i32>>,
        levels: Py<PyArray1<u8>>,
        vectors: Py<PyArray1<u8>>,
        dim: usize,
        half: Option<Py<PyArray2<u16>>>,
        entry_point: i32,
        max_level: i32,
        inner_product: bool,
    ) -> Result<Self> {
        let graph = HnswGraph {
            neighbors,
            offsets,
            cum_neighbors,
            levels,
            vectors,
            dim,
            half,
            entry_point,
            max_level,
            inner_product,
        };
        let g = graph.graph(py)?;
        py.detach(|| g.check())?;
        Ok(graph)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.levels.bind(py).len() / 4
    }
}

/// `(rows int64, scores float32, reached, asked, admitted)`: the `k` nearest rows to `query`
/// that `rules` admits (all rows when `None`), nearest first, searched with a beam of `ef`.
/// `reached` nodes had their distance computed, `asked` of them were checked against the rules
/// and `admitted` passed: `admitted / asked` estimates the eligible share near the query.
#[pyfunction]
#[pyo3(signature = (graph, catalog, rules, query, k, ef))]
#[allow(clippy::type_complexity)]
fn hnsw_search<'py>(
    py: Python<'py>,
    graph: &HnswGraph,
    catalog: &Catalog,
    rules: Option<&Rules>,
    query: &Bound<'py, PyArray1<f32>>,
    k: usize,
    ef: usize,
) -> Result<(
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
    usize,
    usize,
    usize,
)> {
    let g = graph.graph(py)?;
    let query = slice(py, query, "query")?;
    if query.iter().any(|v| !v.is_finite()) {
        return Err(invalid("query vector must be finite"));
    }
    let found = match rules {
        None => py.detach(|| g.search(query, k, ef, All)),
        Some(rules) => {
            let e = eligibility(py, catalog, rules)?;
            if e.len() != g.len() {
                return Err(invalid(format!(
                    "hnsw graph has {} nodes, the catalogue {} items",
                    g.len(),
                    e.len()
                )));
            }
            py.detach(|| g.search(query, k, ef, e))
        }
    }?;
    Ok((
        PyArray1::from_slice(py, &found.rows),
        PyArray1::from_slice(py, &found.scores),
        found.reached,
        found.asked,
        found.admitted,
    ))
}

/// The bundle's inverted lists (`peakrec.retrieval.lists`): `centroids` `float32[nlist, d]` and
/// `offsets` `int64[nlist + 1]` (list `l` holds rows `offsets[l]` to `offsets[l + 1]`), checked
/// once against a catalogue of `n` items.
#[pyclass(frozen, module = "peakrec._core")]
pub struct InvertedLists {
    centroids: Py<PyArray2<f32>>,
    offsets: Py<PyArray1<i64>>,
    n: usize,
}

impl InvertedLists {
    fn lists<'a>(&'a self, py: Python<'a>) -> Result<Lists<'a>> {
        let centroids = self.centroids.bind(py);
        let dim = centroids.shape()[1];
        Lists::new(
            slice(py, centroids, "lists centroids")?,
            slice(py, self.offsets.bind(py), "lists offsets")?,
            dim,
        )
        .map_err(Into::into)
    }
}

#[pymethods]
impl InvertedLists {
    #[new]
    fn new(
        py: Python<'_>,
        centroids: Py<PyArray2<f32>>,
        offsets: Py<PyArray1<i64>>,
        n: usize,
    ) -> Result<Self> {
        let lists = InvertedLists {
            centroids,
            offsets,
            n,
        };
        lists.lists(py)?.check(n)?;
        Ok(lists)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.offsets.bind(py).len().saturating_sub(1)
    }
}

/// The top `k` rows by inner product with `query` among those kept (`kept` and `also`, see
/// `Catalog.scan_kept`) that `rules` admits, found by probing the lists nearest `query` until
/// `min_scored` admitted rows were scored: `(rows int64, scores float32)`, best first, ties by
/// row; `None` when lists remained after `max_tested` listed rows were tested and fewer than
/// `min_scored` of them were kept (the kept rows lie far from the query: scan them instead).
#[pyfunction]
#[pyo3(signature = (lists, catalog, rules, vectors, kept, query, k, min_scored, max_tested, also=None, half=None))]
#[allow(clippy::too_many_arguments)]
fn probe_lists<'py>(
    py: Python<'py>,
    lists: &InvertedLists,
    catalog: &Catalog,
    rules: &Rules,
    vectors: &Bound<'py, PyArray2<f32>>,
    kept: &Bound<'py, PyArray1<u64>>,
    query: &Bound<'py, PyArray1<f32>>,
    k: usize,
    min_scored: usize,
    max_tested: usize,
    also: Option<&Bound<'py, PyArray1<u64>>>,
    half: Option<&Bound<'py, PyArray2<u16>>>,
) -> Result<Option<ScoredRows<'py>>> {
    let KeptArgs {
        rules: e,
        vectors,
        kept,
        also,
        query,
    } = kept_args(py, catalog, rules, (vectors, half), kept, query, also)?;
    let dim = vectors.dim;
    let l = lists.lists(py)?;
    if l.dim != dim || lists.n != e.len() {
        return Err(invalid(format!(
            "lists of dimension {} over {} rows, the vectors have dimension {dim} and {} rows",
            l.dim,
            lists.n,
            e.len()
        )));
    }
    let probe = Probe {
        min_scored,
        max_tested,
    };
    let found = py.detach(|| {
        lists::probe(
            vectors,
            &l,
            kept::and_words(kept, also),
            &e,
            query,
            k,
            probe,
        )
    });
    Ok(found.map(|(rows, scores)| (rows.into_pyarray(py), scores.into_pyarray(py))))
}

pub fn register(m: &Bound<PyModule>) -> PyResult<()> {
    m.add_class::<HnswGraph>()?;
    m.add_class::<InvertedLists>()?;
    m.add_function(wrap_pyfunction!(probe_lists, m)?)?;
    m.add_function(wrap_pyfunction!(hnsw_search, m)?)?;
    Ok(())
}
