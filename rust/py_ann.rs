//! Bindings of the filtered HNSW search (`peakrec_core::hnsw`) over a FAISS index's own arrays.

use crate::py_pipeline::{eligibility, slice, Catalog, Rules, RulesBorrow};
use crate::to_py_err;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use peakrec_core::hnsw::{All, Graph, Unaligned, Value};
use peakrec_core::CoreError;
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

/// Borrows of an `HnswGraph`'s arrays.
struct GraphBorrow<'py> {
    neighbors: PyReadonlyArray1<'py, u8>,
    offsets: PyReadonlyArray1<'py, u8>,
    cum_neighbors: PyReadonlyArray1<'py, i32>,
    levels: PyReadonlyArray1<'py, u8>,
    vectors: PyReadonlyArray1<'py, u8>,
    half: Option<numpy::PyReadonlyArray2<'py, u16>>,
}

impl HnswGraph {
    fn borrow<'py>(&self, py: Python<'py>) -> GraphBorrow<'py> {
        GraphBorrow {
            neighbors: self.neighbors.bind(py).readonly(),
            offsets: self.offsets.bind(py).readonly(),
            cum_neighbors: self.cum_neighbors.bind(py).readonly(),
            levels: self.levels.bind(py).readonly(),
            vectors: self.vectors.bind(py).readonly(),
            half: self.half.as_ref().map(|h| h.bind(py).readonly()),
        }
    }

    fn graph<'a>(&self, py: Python<'_>, b: &'a GraphBorrow<'_>) -> PyResult<Graph<'a>> {
        let half = b
            .half
            .as_ref()
            .map(|h| {
                h.as_slice().map_err(|_| {
                    let message = "hnsw half-precision vectors must be C-contiguous";
                    to_py_err(py, CoreError::InvalidInput(message.into()))
                })
            })
            .transpose()?;
        Ok(Graph {
            neighbors: packed(py, &b.neighbors, "neighbors")?,
            offsets: packed(py, &b.offsets, "offsets")?,
            cum_neighbors: slice(py, &b.cum_neighbors, "cum_neighbors")?,
            levels: packed(py, &b.levels, "levels")?,
            entry_point: self.entry_point,
            max_level: self.max_level,
            vectors: packed(py, &b.vectors, "vectors")?,
            half,
            dim: self.dim,
            inner_product: self.inner_product,
        })
    }
}

fn packed<'a, T: Value>(
    py: Python<'_>,
    bytes: &'a PyReadonlyArray1<'_, u8>,
    name: &str,
) -> PyResult<Unaligned<'a, T>> {
    Unaligned::new(slice(py, bytes, name)?).map_err(|e| to_py_err(py, e))
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
    ) -> PyResult<Self> {
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
        let b = graph.borrow(py);
        let g = graph.graph(py, &b)?;
        py.detach(|| g.check()).map_err(|e| to_py_err(py, e))?;
        drop(b);
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
    query: PyReadonlyArray1<'py, f32>,
    k: usize,
    ef: usize,
) -> PyResult<(
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
    usize,
    usize,
    usize,
)> {
    let gb = graph.borrow(py);
    let g = graph.graph(py, &gb)?;
    let query = slice(py, &query, "query")?;
    if query.iter().any(|v| !v.is_finite()) {
        return Err(to_py_err(
            py,
            CoreError::InvalidInput("query vector must be finite".into()),
        ));
    }
    let cb = catalog.borrow(py);
    let found = match rules {
        None => py.detach(|| g.search(query, k, ef, All)),
        Some(rules) => {
            let rb = RulesBorrow::new(py, rules);
            let e = eligibility(py, cb.items(py)?, &rb, rules)?;
            if e.len() != g.len() {
                return Err(to_py_err(
                    py,
                    CoreError::InvalidInput(format!(
                        "hnsw graph has {} nodes, the catalogue {} items",
                        g.len(),
                        e.len()
                    )),
                ));
            }
            py.detach(|| g.search(query, k, ef, e))
        }
    }
    .map_err(|e| to_py_err(py, e))?;
    Ok((
        PyArray1::from_slice(py, &found.rows),
        PyArray1::from_slice(py, &found.scores),
        found.reached,
        found.asked,
        found.admitted,
    ))
}

pub fn register(m: &Bound<PyModule>) -> PyResult<()> {
    m.add_class::<HnswGraph>()?;
    m.add_function(wrap_pyfunction!(hnsw_search, m)?)?;
    Ok(())
}
