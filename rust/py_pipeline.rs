//! Bindings of the request path's kernels: eligibility bitsets and ranking.
//!
//! A `Catalog` holds the bundle's item columns (read-only, usually memory-mapped) once per bundle;
//! a `RankParams` the weights and caps of one kind of page, also once per bundle; a `Rules` one
//! request's restrictions and the live item state, which other threads and processes update in
//! place and which is therefore read through atomics. Every call borrows the arrays zero-copy and
//! releases the GIL around the work, except for small batches (see `DETACH_ABOVE`).

use crate::error::{invalid, Result};
use numpy::{Element, IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use peakrec_core::bitset::Bitset;
use peakrec_core::eligibility::{
    self as elig, Eligibility, ItemColumns, LiveState, Records, Rules as CoreRules,
};
use peakrec_core::kept::{self, Vectors};
use peakrec_core::rank::{self, RankColumns, RankParams as CoreRankParams};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8};

/// The elements of a C-contiguous array, read without rust-numpy's borrow tracking.
///
/// A tracked borrow costs ~150 ns (an entry taken and released in a global hash map), and a
/// request took twenty: 3 µs of a 6 µs call to rank nothing. The tracking only guards against a
/// writable borrow taken through rust-numpy, which this crate never takes. The arrays read this
/// way are never written while a request reads them (bundle columns, request masks); the live
/// state, which is, goes through [`atomic_slice`].
pub(crate) fn slice<'a, T: Element, D: numpy::ndarray::Dimension>(
    _py: Python<'_>,
    arr: &'a Bound<'_, numpy::PyArray<T, D>>,
    name: &str,
) -> Result<&'a [T]> {
    // `as_slice` also takes Fortran order, which would be read transposed.
    let c_order = arr.is_c_contiguous();
    // SAFETY: no `&mut` to these elements exists in this crate, and nothing writes them while
    // the slice lives (see above).
    unsafe { arr.as_slice() }
        .ok()
        .filter(|_| c_order)
        .ok_or_else(|| invalid(format!("{name} must be a C-contiguous array")))
}

/// A live-state column (updated in place by other threads and processes while requests read
/// it) as atomics `A` of the same size and alignment as `T`, so every read is an atomic load.
fn atomic_slice<'a, T: Element, A>(arr: &'a Bound<'_, PyArray1<T>>, name: &str) -> Result<&'a [A]> {
    const { assert!(std::mem::size_of::<T>() == std::mem::size_of::<A>()) };
    let ptr = arr.data();
    if !arr.is_c_contiguous() || !(ptr as usize).is_multiple_of(std::mem::align_of::<A>()) {
        return Err(invalid(format!(
            "{name} must be an aligned C-contiguous array"
        )));
    }
    // SAFETY: the array keeps `len` elements of `T` alive at `ptr` for 'a, aligned for `A`, and
    // `A` is an atomic of `T`'s size, so the memory is a valid `[A]`. Any concurrent write is
    // another process's or numpy's store of a whole aligned element; this crate only loads.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<A>(), arr.len()) })
}

fn opt_slice<'a>(
    py: Python<'_>,
    arr: Option<&'a Bound<'_, PyArray1<u8>>>,
    name: &str,
) -> Result<Option<&'a [u8]>> {
    arr.map(|a| slice(py, a, name)).transpose()
}

/// Candidates below which a call keeps the GIL: releasing and re-taking it costs ~1-2 µs, as
/// much as checking a thousand candidates; bigger batches release it so other threads run.
const DETACH_ABOVE: usize = 20_000;

fn detach_if_large<T: Send>(py: Python<'_>, items: usize, f: impl Send + FnOnce() -> T) -> T {
    if items > DETACH_ABOVE {
        py.detach(f)
    } else {
        f()
    }
}

/// A bundle's item columns, row-aligned (see docs/bundle-format.md).
#[pyclass(frozen, module = "peakrec._core")]
pub struct Catalog {
    brand: Py<PyArray1<i32>>,
    category: Py<PyArray1<i32>>,
    regions: Py<PyArray2<u64>>,
    launch_ts: Py<PyArray1<i64>>,
    presale_start: Py<PyArray1<i64>>,
    presale_end: Py<PyArray1<i64>>,
    member_only: Py<PyArray1<u8>>,
    campaigns: Py<PyArray1<u64>>,
    popularity: Py<PyArray1<f32>>,
    n: usize,
    /// The static columns (and the first regions word) as one 64-byte record per item, copied once
    /// per worker, so a scattered candidate costs one cache miss for them instead of one per column.
    packed: Option<Records>,
}

/// One request's restrictions plus the live item state it reads.
#[pyclass(frozen, module = "peakrec._core")]
pub struct Rules {
    stock: Py<PyArray1<i32>>,
    price: Py<PyArray1<f32>>,
    available: Py<PyArray1<u8>>,
    region: usize,
    now: i64,
    price_min: f32,
    price_max: f32,
    brand_ok: Option<Py<PyArray1<u8>>>,
    category_ok: Option<Py<PyArray1<u8>>>,
    member_brands: Option<Py<PyArray1<u8>>>,
    excluded: Option<Py<PyArray1<i64>>>,
}

#[pymethods]
impl Rules {
    #[new]
    #[pyo3(signature = (stock, price, available, region, now, price_min=f32::NEG_INFINITY, price_max=f32::INFINITY,
                        brand_ok=None, category_ok=None, member_brands=None, excluded=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        stock: Py<PyArray1<i32>>,
        price: Py<PyArray1<f32>>,
        available: Py<PyArray1<u8>>,
        region: usize,
        now: i64,
        price_min: f32,
        price_max: f32,
        brand_ok: Option<Py<PyArray1<u8>>>,
        category_ok: Option<Py<PyArray1<u8>>>,
        member_brands: Option<Py<PyArray1<u8>>>,
        excluded: Option<Py<PyArray1<i64>>>,
    ) -> Self {
        Rules {
            stock,
            price,
            available,
            region,
            now,
            price_min,
            price_max,
            brand_ok,
            category_ok,
            member_brands,
            excluded,
        }
    }
}

impl Catalog {
    pub(crate) fn items<'a>(&'a self, py: Python<'a>) -> Result<ItemColumns<'a>> {
        let regions = self.regions.bind(py);
        Ok(ItemColumns {
            brand: slice(py, self.brand.bind(py), "brand")?,
            category: slice(py, self.category.bind(py), "category")?,
            regions: slice(py, regions, "regions")?,
            region_words: regions.shape()[1],
            launch_ts: slice(py, self.launch_ts.bind(py), "launch_ts")?,
            presale_start: slice(py, self.presale_start.bind(py), "presale_start")?,
            presale_end: slice(py, self.presale_end.bind(py), "presale_end")?,
            member_only: slice(py, self.member_only.bind(py), "member_only")?,
            packed: self.packed.as_ref().map(Records::as_slice),
        })
    }

    fn rank_columns<'a>(&'a self, py: Python<'a>) -> Result<RankColumns<'a>> {
        Ok(RankColumns {
            brand: slice(py, self.brand.bind(py), "brand")?,
            category: slice(py, self.category.bind(py), "category")?,
            launch_ts: slice(py, self.launch_ts.bind(py), "launch_ts")?,
            presale_start: slice(py, self.presale_start.bind(py), "presale_start")?,
            presale_end: slice(py, self.presale_end.bind(py), "presale_end")?,
            campaigns: slice(py, self.campaigns.bind(py), "campaigns")?,
            popularity: slice(py, self.popularity.bind(py), "popularity")?,
            packed: self.packed.as_ref().map(Records::as_slice),
        })
    }
}

/// The eligibility rules of `r` over `catalog`'s items.
pub(crate) fn eligibility<'a>(
    py: Python<'a>,
    catalog: &'a Catalog,
    r: &'a Rules,
) -> Result<Eligibility<'a>> {
    let live = LiveState {
        stock: atomic_slice::<i32, AtomicI32>(r.stock.bind(py), "stock")?,
        price: atomic_slice::<f32, AtomicU32>(r.price.bind(py), "price")?,
        available: atomic_slice::<u8, AtomicU8>(r.available.bind(py), "available")?,
    };
    let excluded: &[i64] = match &r.excluded {
        Some(e) => slice(py, e.bind(py), "excluded")?,
        None => &[],
    };
    let opt =
        |a: &'a Option<Py<PyArray1<u8>>>, name| opt_slice(py, a.as_ref().map(|a| a.bind(py)), name);
    let rules = CoreRules {
        region: r.region,
        now: r.now,
        price_min: r.price_min,
        price_max: r.price_max,
        brand_ok: opt(&r.brand_ok, "brand_ok")?,
        category_ok: opt(&r.category_ok, "category_ok")?,
        member_brands: opt(&r.member_brands, "member_brands")?,
        excluded,
    };
    Ok(Eligibility::new(catalog.items(py)?, live, rules)?)
}

#[pymethods]
impl Catalog {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        brand: Py<PyArray1<i32>>,
        category: Py<PyArray1<i32>>,
        regions: Py<PyArray2<u64>>,
        launch_ts: Py<PyArray1<i64>>,
        presale_start: Py<PyArray1<i64>>,
        presale_end: Py<PyArray1<i64>>,
        member_only: Py<PyArray1<u8>>,
        campaigns: Py<PyArray1<u64>>,
        popularity: Py<PyArray1<f32>>,
    ) -> Result<Self> {
        let n = brand.bind(py).len();
        let mut catalog = Catalog {
            brand,
            category,
            regions,
            launch_ts,
            presale_start,
            presale_end,
            member_only,
            campaigns,
            popularity,
            n,
            packed: None,
        };
        // Validate shapes and contiguity once, here, rather than on the first request.
        let packed = {
            let items = catalog.items(py)?;
            let cols = catalog.rank_columns(py)?;
            for (name, len) in [
                ("campaigns", cols.campaigns.len()),
                ("popularity", cols.popularity.len()),
            ] {
                if len != n {
                    return Err(invalid(format!(
                        "items/{name} has {len} rows, items/brand has {n}"
                    )));
                }
            }
            elig::pack(&items, cols.campaigns, cols.popularity)?
        };
        catalog.packed = Some(packed);
        Ok(catalog)
    }

    fn __len__(&self) -> usize {
        self.n
    }

    /// `(words, count)`: the eligible rows as a bitset (`uint64[ceil(n / 64)]`, whose bytes are
    /// the packed little-endian bitmap `IDSelectorBitmap` takes) and how many they are.
    fn eligible<'py>(
        &self,
        py: Python<'py>,
        rules: &Rules,
    ) -> Result<(Bound<'py, PyArray1<u64>>, usize)> {
        let e = eligibility(py, self, rules)?;
        let (words, count) = py.detach(|| {
            let set = e.bitset();
            let count = set.count();
            (set.into_words(), count)
        });
        Ok((words.into_pyarray(py), count))
    }

    /// Estimated fraction of eligible items from `samples` evenly spread rows.
    #[pyo3(signature = (rules, samples=2048))]
    fn sample_fraction(&self, py: Python<'_>, rules: &Rules, samples: usize) -> Result<f64> {
        let e = eligibility(py, self, rules)?;
        Ok(py.detach(|| e.sample_fraction(samples)))
    }

    /// `uint8[len(rows)]`: 1 where the row is eligible.
    fn check_rows<'py>(
        &self,
        py: Python<'py>,
        rules: &Rules,
        rows: &Bound<'py, PyArray1<i64>>,
    ) -> Result<Bound<'py, PyArray1<u8>>> {
        let e = eligibility(py, self, rules)?;
        let rows = slice(py, rows, "rows")?;
        let ok = detach_if_large(py, rows.len(), || e.check_rows(rows));
        Ok(PyArray1::from_slice(py, &ok))
    }

    /// Exact top `k` by inner product with `query` (`float32[d]`) among the rows set in `kept`
    /// (and in `also`, when given; bitsets `uint64[ceil(n / 64)]`) that `rules` admits:
    /// `(rows int64, scores float32)`, best first, ties by row. Reads only the kept rows'
    /// vectors (`vectors` `float32[n, d]`, or `half`, the same in half precision), never all
    /// items. `summary` (`uint64[ceil(words / 64)]`): bit `w` set for every word `w` of `kept`
    /// that may hold a row; only those words are read.
    #[pyo3(signature = (rules, vectors, kept, query, k, also=None, half=None, summary=None))]
    #[allow(clippy::too_many_arguments)]
    fn scan_kept<'py>(
        &self,
        py: Python<'py>,
        rules: &Rules,
        vectors: &Bound<'py, PyArray2<f32>>,
        kept: &Bound<'py, PyArray1<u64>>,
        query: &Bound<'py, PyArray1<f32>>,
        k: usize,
        also: Option<&Bound<'py, PyArray1<u64>>>,
        half: Option<&Bound<'py, PyArray2<u16>>>,
        summary: Option<&Bound<'py, PyArray1<u64>>>,
    ) -> Result<ScoredRows<'py>> {
        let summary = summary
            .map(|s| atomic_slice::<u64, AtomicU64>(s, "summary"))
            .transpose()?;
        let KeptArgs {
            rules: e,
            vectors,
            kept,
            also,
            query,
        } = kept_args(py, self, rules, (vectors, half), kept, query, also)?;
        let words = kept.len();
        if summary.is_some_and(|s| s.len() != words.div_ceil(64)) {
            return Err(invalid(format!(
                "summary must have {} words for {words} kept words",
                words.div_ceil(64)
            )));
        }
        let (rows, scores) = py.detach(|| {
            kept::scan(
                vectors,
                words,
                kept::and_words(kept, also),
                summary,
                &e,
                query,
                k,
            )
        });
        Ok((rows.into_pyarray(py), scores.into_pyarray(py)))
    }

    /// Ranks candidates into one page: `(rows int64, scores float32, reasons uint32, pool)`.
    ///
    /// Ineligible candidates are dropped when `rules` is given; duplicates are merged. `params`
    /// holds the weights and caps (built once per bundle and stage); `campaign_boost` is
    /// `float32[<=64]` (zero for campaigns not aimed at this shopper or not running at `now`).
    #[pyo3(signature = (rules, rows, relevance, sources, params, *, page, page_size, now,
                        campaign_boost=None, member_brands=None, considered_categories=None))]
    #[allow(clippy::too_many_arguments)]
    fn rank<'py>(
        &self,
        py: Python<'py>,
        rules: Option<&Rules>,
        rows: &Bound<'py, PyArray1<i64>>,
        relevance: &Bound<'py, PyArray1<f32>>,
        sources: &Bound<'py, PyArray1<u8>>,
        params: &RankParams,
        page: usize,
        page_size: usize,
        now: i64,
        campaign_boost: Option<&Bound<'py, PyArray1<f32>>>,
        member_brands: Option<&Bound<'py, PyArray1<u8>>>,
        considered_categories: Option<&Bound<'py, PyArray1<u8>>>,
    ) -> Result<RankOutput<'py>> {
        let mut boosts = [0f32; 64];
        if let Some(cbst) = campaign_boost {
            let s = slice(py, cbst, "campaign_boost")?;
            if s.len() > 64 {
                return Err(invalid(format!(
                    "campaign_boost has {} entries, at most 64",
                    s.len()
                )));
            }
            boosts[..s.len()].copy_from_slice(s);
        }
        let params = params.for_page(page, page_size, now, boosts);
        let e = rules.map(|r| eligibility(py, self, r)).transpose()?;
        let cols = self.rank_columns(py)?;
        let (rows, relevance, sources) = (
            slice(py, rows, "rows")?,
            slice(py, relevance, "relevance")?,
            slice(py, sources, "sources")?,
        );
        let members = opt_slice(py, member_brands, "member_brands")?;
        let considered = opt_slice(py, considered_categories, "considered_categories")?;
        let work = || {
            rank::rank(
                &cols,
                &params,
                e.as_ref(),
                members,
                considered,
                rows,
                relevance,
                sources,
            )
        };
        let ranked = detach_if_large(py, rows.len(), work)?;
        // Copies into numpy-owned arrays: for a page cheaper than wrapping the Vecs.
        Ok((
            PyArray1::from_slice(py, &ranked.rows),
            PyArray1::from_slice(py, &ranked.scores),
            PyArray1::from_slice(py, &ranked.reasons),
            ranked.pool,
        ))
    }
}

/// The weights and caps of one kind of page (a lifecycle stage's storefront, search, similar
/// items, the fallback): built once per bundle, passed to every `Catalog.rank` call.
#[pyclass(frozen, module = "peakrec._core")]
pub struct RankParams {
    #[pyo3(get)]
    relevance_weight: f32,
    #[pyo3(get)]
    popularity_weight: f32,
    #[pyo3(get)]
    new_boost: f32,
    #[pyo3(get)]
    new_window: i64,
    #[pyo3(get)]
    new_reserved_share: f32,
    #[pyo3(get)]
    new_max_share: f32,
    #[pyo3(get)]
    presale_boost: f32,
    #[pyo3(get)]
    member_boost: f32,
    #[pyo3(get)]
    considered_boost: f32,
    #[pyo3(get)]
    max_per_brand: usize,
    #[pyo3(get)]
    max_per_category: usize,
    #[pyo3(get)]
    pool_factor: f32,
    #[pyo3(get)]
    limited_sources: u32,
}

#[pymethods]
impl RankParams {
    /// `new_reserved_share` of each page is reserved for new items (launched within
    /// `new_window` seconds) and at most `new_max_share` of it may be new (1 = no cap).
    /// `pool_factor`: page `j` is chosen among the first `(j + 1) * page_size * pool_factor`
    /// candidates of the `limited_sources` (0 = one pool for every page).
    #[new]
    #[pyo3(signature = (*, relevance_weight=1.0, popularity_weight=0.0, new_boost=0.0, new_window=0,
                        new_reserved_share=0.0, new_max_share=1.0, presale_boost=0.0, member_boost=0.0,
                        considered_boost=0.0, max_per_brand=0, max_per_category=0, pool_factor=0.0,
                        limited_sources=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        relevance_weight: f32,
        popularity_weight: f32,
        new_boost: f32,
        new_window: i64,
        new_reserved_share: f32,
        new_max_share: f32,
        presale_boost: f32,
        member_boost: f32,
        considered_boost: f32,
        max_per_brand: usize,
        max_per_category: usize,
        pool_factor: f32,
        limited_sources: u32,
    ) -> Result<Self> {
        let weights = [
            relevance_weight,
            popularity_weight,
            new_boost,
            presale_boost,
            member_boost,
            considered_boost,
            pool_factor,
        ];
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(invalid("rank weights must be finite"));
        }
        for (name, share) in [
            ("new_reserved_share", new_reserved_share),
            ("new_max_share", new_max_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(invalid(format!("{name} must be in [0, 1], got {share}")));
            }
        }
        if pool_factor < 0.0 || new_window < 0 {
            return Err(invalid("pool_factor and new_window must not be negative"));
        }
        Ok(RankParams {
            relevance_weight,
            popularity_weight,
            new_boost,
            new_window,
            new_reserved_share,
            new_max_share,
            presale_boost,
            member_boost,
            considered_boost,
            max_per_brand,
            max_per_category,
            pool_factor,
            limited_sources,
        })
    }
}

impl RankParams {
    /// The core's parameters for one page of `page_size` at `now`.
    fn for_page(
        &self,
        page: usize,
        page_size: usize,
        now: i64,
        campaign_boost: [f32; 64],
    ) -> CoreRankParams {
        let size = page_size as f64;
        let new_slots = (self.new_reserved_share as f64 * size).floor() as usize;
        let max_new = if self.new_max_share >= 1.0 {
            0
        } else {
            ((self.new_max_share as f64 * size).floor() as usize)
                .max(new_slots)
                .max(1)
        };
        CoreRankParams {
            relevance: self.relevance_weight,
            popularity: self.popularity_weight,
            new_boost: self.new_boost,
            new_window: self.new_window,
            new_slots,
            max_new,
            presale_boost: self.presale_boost,
            campaign_boost,
            member_boost: self.member_boost,
            considered_boost: self.considered_boost,
            max_per_brand: self.max_per_brand,
            max_per_category: self.max_per_category,
            now,
            page,
            page_size,
            pool_per_page: (size * self.pool_factor as f64) as f32,
            limited_sources: self.limited_sources,
        }
    }
}

type RankOutput<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<u32>>,
    usize,
);

/// `int64[count]`: the rows set in a bitset from `Catalog.eligible`, ascending.
#[pyfunction]
fn bitset_rows<'py>(
    py: Python<'py>,
    words: &Bound<'py, PyArray1<u64>>,
) -> Result<Bound<'py, PyArray1<i64>>> {
    let words = slice(py, words, "words")?;
    let rows = py.detach(|| Bitset::from_words(words.to_vec(), words.len() * 64).rows());
    Ok(rows.into_pyarray(py))
}

/// `(rows int64, scores float32)`.
/// The arguments of a search over kept sets, checked: `vectors` `float32[n, d]` row-aligned with
/// the catalogue (and `half`, the same as `uint16[n, d]` half-precision bits, read instead when
/// given), `kept` and `also` bitsets of its rows, `query` `float32[d]`.
pub(crate) struct KeptArgs<'a> {
    pub rules: Eligibility<'a>,
    pub vectors: Vectors<'a>,
    /// Updated in place by other threads while requests read it (the live set): atomics.
    pub kept: &'a [AtomicU64],
    pub also: Option<&'a [u64]>,
    pub query: &'a [f32],
}

/// The vectors of a kept search and their half-precision copy, as `KeptArgs` takes them.
pub(crate) type VectorArrays<'a> = (
    &'a Bound<'a, PyArray2<f32>>,
    Option<&'a Bound<'a, PyArray2<u16>>>,
);

pub(crate) fn kept_args<'a>(
    py: Python<'a>,
    catalog: &'a Catalog,
    rules: &'a Rules,
    (vectors, half): VectorArrays<'a>,
    kept: &'a Bound<'a, PyArray1<u64>>,
    query: &'a Bound<'a, PyArray1<f32>>,
    also: Option<&'a Bound<'a, PyArray1<u64>>>,
) -> Result<KeptArgs<'a>> {
    let e = eligibility(py, catalog, rules)?;
    let n = catalog.n;
    let dim = vectors.shape()[1];
    if vectors.shape()[0] != n {
        return Err(invalid(format!(
            "vectors has {} rows, the catalogue has {n} items",
            vectors.shape()[0]
        )));
    }
    if half.is_some_and(|h| h.shape() != vectors.shape()) {
        return Err(invalid(format!(
            "half-precision vectors must be [{n}, {dim}] like the vectors"
        )));
    }
    let words = n.div_ceil(64);
    let kept = atomic_slice::<u64, AtomicU64>(kept, "kept")?;
    let also = also.map(|a| slice(py, a, "also")).transpose()?;
    if kept.len() != words || also.is_some_and(|a| a.len() != words) {
        return Err(invalid(format!(
            "kept sets must have {words} words for {n} items"
        )));
    }
    let query = slice(py, query, "query")?;
    if query.len() != dim {
        return Err(invalid(format!(
            "query has {} values, the vectors {dim}",
            query.len()
        )));
    }
    Ok(KeptArgs {
        rules: e,
        vectors: Vectors {
            full: slice(py, vectors, "vectors")?,
            half: half.map(|h| slice(py, h, "half")).transpose()?,
            dim,
        },
        kept,
        also,
        query,
    })
}

pub(crate) type ScoredRows<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>);

/// How many rows both bitsets hold (`uint64` words of the same length).
#[pyfunction]
fn bitset_and_count(
    py: Python<'_>,
    a: &Bound<'_, PyArray1<u64>>,
    b: &Bound<'_, PyArray1<u64>>,
) -> Result<usize> {
    let (a, b) = (slice(py, a, "a")?, slice(py, b, "b")?);
    if a.len() != b.len() {
        return Err(invalid(format!(
            "bitsets of {} and {} words",
            a.len(),
            b.len()
        )));
    }
    Ok(kept::and_count(a, b))
}

pub fn register(m: &Bound<PyModule>) -> PyResult<()> {
    m.add_class::<Catalog>()?;
    m.add_function(wrap_pyfunction!(bitset_and_count, m)?)?;
    m.add_class::<Rules>()?;
    m.add_class::<RankParams>()?;
    m.add_function(wrap_pyfunction!(bitset_rows, m)?)?;
    m.add("REASON_NEW", rank::REASON_NEW)?;
    m.add("REASON_CAMPAIGN", rank::REASON_CAMPAIGN)?;
    m.add("REASON_MEMBER", rank::REASON_MEMBER)?;
    m.add("REASON_CONSIDERED", rank::REASON_CONSIDERED)?;
    m.add("REASON_POPULAR", rank::REASON_POPULAR)?;
    m.add("REASON_RESERVED", rank::REASON_RESERVED)?;
    m.add("REASON_CAP_RELAXED", rank::REASON_CAP_RELAXED)?;
    m.add("REASON_PRESALE", rank::REASON_PRESALE)?;
    Ok(())
}
