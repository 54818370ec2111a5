//! Ranking of retrieved candidates: drop ineligible ones, score relevance plus business terms,
//! then fill pages in score order under diversity caps with reserved slots for new items.
//!
//! Pages are filled one after another from the same ordered pool, so page `p` is the same whether
//! or not earlier pages were requested, and no item appears on two pages.

use crate::eligibility::{in_presale, Eligibility, Packed};
use crate::error::{invalid, Result};
use crate::prefetch;

/// Reason bits above the 8 source bits the caller passes in.
pub const REASON_NEW: u32 = 1 << 8;
pub const REASON_CAMPAIGN: u32 = 1 << 9;
pub const REASON_MEMBER: u32 = 1 << 10;
pub const REASON_CONSIDERED: u32 = 1 << 11;
pub const REASON_POPULAR: u32 = 1 << 12;
pub const REASON_RESERVED: u32 = 1 << 13;
pub const REASON_CAP_RELAXED: u32 = 1 << 14;
pub const REASON_PRESALE: u32 = 1 << 15;

/// Per-item columns the score reads.
#[derive(Clone, Copy)]
pub struct RankColumns<'a> {
    pub brand: &'a [i32],
    pub category: &'a [i32],
    pub launch_ts: &'a [i64],
    /// 0 = not a presale item.
    pub presale_start: &'a [i64],
    pub presale_end: &'a [i64],
    /// Bit `c` = item is in campaign `c`.
    pub campaigns: &'a [u64],
    /// Popularity scaled to [0, 1] (e.g. `log1p(pop) / log1p(max)`).
    pub popularity: &'a [f32],
    /// The same columns as records (see [`crate::eligibility::pack`]); used instead when given.
    pub packed: Option<&'a [Packed]>,
}

/// Weights, caps and page shape of one request (weights come from the bundle config).
#[derive(Clone, Debug)]
pub struct RankParams {
    pub relevance: f32,
    pub popularity: f32,
    /// Boost of items launched within `new_window` seconds of `now`.
    pub new_boost: f32,
    pub new_window: i64,
    /// Slots per page reserved for new items (when enough eligible new items are candidates).
    pub new_slots: usize,
    /// At most this many new items per page (incubation is capped); 0 = no cap.
    pub max_new: usize,
    /// Boost of presale items inside their presale window.
    pub presale_boost: f32,
    /// Boost per campaign, already zero for campaigns not targeting this shopper.
    pub campaign_boost: [f32; 64],
    pub member_boost: f32,
    pub considered_boost: f32,
    /// 0 = no cap.
    pub max_per_brand: usize,
    pub max_per_category: usize,
    pub now: i64,
    pub page: usize,
    pub page_size: usize,
    /// Page `j` may only use the first `ceil((j + 1) * pool_per_page)` candidates by relevance
    /// among those found only by `limited_sources`: the pool page `j` was served from when it was
    /// requested itself, so re-deriving earlier pages from a deeper pool gives what was shown and
    /// pages stay disjoint. 0 = one pool for every page.
    pub pool_per_page: f32,
    pub limited_sources: u32,
}

/// One page: rows, scores and reason bits, in display order.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedPage {
    pub rows: Vec<i64>,
    pub scores: Vec<f32>,
    pub reasons: Vec<u32>,
    /// Eligible distinct candidates the page was chosen from.
    pub pool: usize,
}

#[derive(Clone, Copy)]
struct Scored {
    row: i64,
    score: f32,
    /// Relevance as retrieved (best of duplicates), before weights and boosts.
    rel: f32,
    reasons: u32,
    brand: i32,
    category: i32,
    new: bool,
    /// Relevance rank among pool-limited candidates (0 for candidates in every pool).
    rel_rank: u32,
}

#[inline]
fn flag(mask: Option<&[u8]>, index: i32) -> bool {
    mask.is_some_and(|m| {
        usize::try_from(index)
            .ok()
            .and_then(|i| m.get(i))
            .is_some_and(|&v| v != 0)
    })
}

/// Scores `rows` (with `relevance` and `sources` bits, row-aligned; duplicates merged, -1 ignored),
/// drops those `eligible` rejects, and returns page `params.page`.
///
/// `member_brands` and `considered_categories` are masks over brand and category indices.
#[allow(clippy::too_many_arguments)]
pub fn rank(
    cols: &RankColumns<'_>,
    params: &RankParams,
    eligible: Option<&Eligibility<'_>>,
    member_brands: Option<&[u8]>,
    considered_categories: Option<&[u8]>,
    rows: &[i64],
    relevance: &[f32],
    sources: &[u8],
) -> Result<RankedPage> {
    let n = cols.brand.len();
    if relevance.len() != rows.len() || sources.len() != rows.len() {
        return Err(invalid(format!(
            "rows, relevance and sources must have one length, got {}, {}, {}",
            rows.len(),
            relevance.len(),
            sources.len()
        )));
    }
    for (name, len) in [
        ("category", cols.category.len()),
        ("launch_ts", cols.launch_ts.len()),
        ("presale_start", cols.presale_start.len()),
        ("presale_end", cols.presale_end.len()),
        ("campaigns", cols.campaigns.len()),
        ("popularity", cols.popularity.len()),
    ] {
        if len != n {
            return Err(invalid(format!(
                "items/{name} has {len} rows, items/brand has {n}"
            )));
        }
    }
    if cols.packed.is_some_and(|p| p.len() != n) {
        return Err(invalid("packed item records do not match the item columns"));
    }
    if params.page_size == 0 {
        return Err(invalid("page_size must be at least 1"));
    }
    if n == 0 {
        return Ok(RankedPage {
            rows: vec![],
            scores: vec![],
            reasons: vec![],
            pool: 0,
        });
    }

    // Candidates are scattered over the catalogue, so their loads are cache misses. Two passes
    // keep many in flight at once: a short one that tests the live state (on sale, in stock,
    // price) and prefetches the records of those that pass, then one that checks and scores them
    // from their records. Neither branches on a loaded value (a third of candidates fail at
    // random; a mispredicted exit would make each candidate's loads wait for the last one's).
    // When the rules read the same packed records as the score, each is loaded once for both.
    let fused = match (eligible.and_then(|e| e.packed()), cols.packed) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        _ => false,
    };
    let mut live = vec![0u32; rows.len()];
    let mut n_live = 0;
    for (i, &row) in rows.iter().enumerate() {
        let in_range = row >= 0 && (row as u64) < n as u64;
        let r = if in_range { row as usize } else { 0 };
        let ok = match eligible {
            Some(e) if fused => e.live_ok(r),
            _ => true,
        };
        if let Some(packed) = cols.packed {
            prefetch(&packed[r]);
        }
        live[n_live] = i as u32;
        n_live += (in_range & ok) as usize;
    }
    let mut pool: Vec<Scored> = Vec::with_capacity(n_live);
    let spare = pool.spare_capacity_mut();
    let mut kept = 0;
    for &i in &live[..n_live] {
        let i = i as usize;
        let (row, r) = (rows[i], rows[i] as usize);
        let owned;
        let p = match cols.packed {
            Some(packed) => &packed[r],
            None => {
                owned = record(cols, r);
                &owned
            }
        };
        let ok = match eligible {
            None => true,
            Some(e) if fused => e.admits_record(r, p),
            Some(e) => e.contains(row),
        };
        let s = Scored {
            row,
            score: relevance[i],
            rel: relevance[i],
            reasons: sources[i] as u32,
            brand: 0,
            category: 0,
            new: false,
            rel_rank: 0,
        };
        spare[kept].write(score(&s, p, params, member_brands, considered_categories));
        kept += ok as usize;
    }
    // SAFETY: slots 0..kept were written above (each slot below `kept` holds a kept candidate).
    unsafe { pool.set_len(kept) };

    // Merge duplicates (a row found by two sources): best relevance, both sources, scored again.
    // An open-addressing table of pool positions, as sorting the candidates would cost more.
    let size = (pool.len() * 2).next_power_of_two().max(16);
    let mut table = vec![u32::MAX; size];
    let mut distinct = 0;
    for i in 0..pool.len() {
        let s = pool[i];
        let mut h = (s.row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize >> 7;
        loop {
            h &= size - 1;
            let at = table[h];
            if at == u32::MAX {
                table[h] = distinct as u32;
                pool[distinct] = s;
                distinct += 1;
                break;
            }
            let first = &mut pool[at as usize];
            if first.row == s.row {
                first.rel = first.rel.max(s.rel);
                first.reasons |= s.reasons;
                let p = match cols.packed {
                    Some(packed) => packed[s.row as usize],
                    None => record(cols, s.row as usize),
                };
                *first = score(first, &p, params, member_brands, considered_categories);
                break;
            }
            h += 1;
        }
    }
    pool.truncate(distinct);
    drop(table);

    if params.pool_per_page > 0.0 {
        // Ranked among every candidate the limited sources found (so the ranks match those of a
        // request that searched less deep), exempt when another source found it too.
        let mut by_rel: Vec<(u64, u32)> = (0..pool.len())
            .filter(|&i| pool[i].reasons & params.limited_sources != 0)
            .map(|i| {
                (
                    ((!ordered_bits(pool[i].rel)) as u64) << 32 | pool[i].row as u64,
                    i as u32,
                )
            })
            .collect();
        by_rel.sort_unstable();
        for (rank, &(_, i)) in by_rel.iter().enumerate() {
            let exempt = pool[i as usize].reasons & 0xff & !params.limited_sources != 0;
            pool[i as usize].rel_rank = if exempt { 0 } else { rank as u32 };
        }
    }
    let pool_size = pool.len();
    if let Some(picks) = first_page_by_brand(&pool, params) {
        return Ok(RankedPage {
            rows: picks.iter().map(|&i| pool[i as usize].row).collect(),
            scores: picks.iter().map(|&i| pool[i as usize].score).collect(),
            reasons: picks.iter().map(|&i| pool[i as usize].reasons).collect(),
            pool: pool_size,
        });
    }
    let sorted = best_first(&pool);
    let pool = &sorted;
    let (n_brands, n_categories) = pool.iter().fold((0usize, 0usize), |(b, c), s| {
        (
            b.max(s.brand.max(-1).wrapping_add(1) as usize),
            c.max(s.category.max(-1).wrapping_add(1) as usize),
        )
    });
    let mut counts = Counts {
        brands: vec![0; n_brands + 1],
        categories: vec![0; n_categories + 1],
    };
    let mut taken = vec![false; pool_size];
    let mut page_items: Vec<(usize, u32)> = Vec::new();
    for page in 0..=params.page {
        let limit = if params.pool_per_page > 0.0 {
            ((page + 1) as f64 * params.pool_per_page as f64).ceil() as u32
        } else {
            u32::MAX
        };
        page_items = fill_page(pool, &mut taken, params, &mut counts, limit);
        if page_items.is_empty() {
            break;
        }
    }
    // `pool` is best first, so pool order is display order (picks of one pass are already in it).
    page_items.sort_unstable_by_key(|&(i, _)| i);
    Ok(RankedPage {
        rows: page_items.iter().map(|&(i, _)| pool[i].row).collect(),
        scores: page_items.iter().map(|&(i, _)| pool[i].score).collect(),
        reasons: page_items
            .iter()
            .map(|&(i, extra)| pool[i].reasons | extra)
            .collect(),
        pool: pool_size,
    })
}

/// Page 0 without ordering the pool, when only a brand cap (or no cap) applies: the greedy fill
/// then takes exactly the best `page_size` of the candidates that rank below `max_per_brand`
/// within their brand (an item is skipped only when `max_per_brand` better ones of its brand were
/// taken). So one pass keeps each brand's best few, and only those are ordered. `None` when the
/// full fill is needed: other pages, a category cap, reserved new slots with new candidates, or
/// too few capped candidates (the cap would be relaxed).
fn first_page_by_brand(pool: &[Scored], params: &RankParams) -> Option<Vec<u32>> {
    const MAX_CAP: usize = 32;
    let cap = params.max_per_brand;
    if params.page != 0
        || params.max_per_category != 0
        || cap > MAX_CAP
        || ((params.new_slots > 0 || params.max_new > 0) && pool.iter().any(|s| s.new))
        || pool.iter().any(|s| s.row > u32::MAX as i64)
    {
        return None;
    }
    let limit = if params.pool_per_page > 0.0 {
        (params.pool_per_page as f64).ceil() as u32
    } else {
        u32::MAX
    };
    // Best first as one integer (descending score, then ascending row; rows are distinct), so
    // comparisons need not look into the pool.
    let key = |s: &Scored| ((!ordered_bits(s.score)) as u64) << 32 | s.row as u64;
    let usable = |s: &Scored| s.rel_rank < limit;
    let mut picks: Vec<(u64, u32)> = if cap == 0 {
        pool.iter()
            .enumerate()
            .filter(|(_, s)| usable(s))
            .map(|(i, s)| (key(s), i as u32))
            .collect()
    } else {
        let slots = pool
            .iter()
            .fold(0usize, |m, s| m.max(slot(s.brand)))
            .saturating_add(1);
        if slots.saturating_mul(cap) > 4 * pool.len() + 4096 {
            return None; // sparse brand indices: the table would cost more than the fill
        }
        // Each brand's best `cap` candidates, best first.
        let mut best = vec![(0u64, 0u32); slots * cap];
        let mut lens = vec![0u32; slots];
        let mut usable_count = 0usize;
        for (i, s) in pool.iter().enumerate() {
            if !usable(s) {
                continue;
            }
            usable_count += 1;
            let k = key(s);
            let b = slot(s.brand);
            let list = &mut best[b * cap..(b + 1) * cap];
            let len = lens[b] as usize;
            if len == cap && k > list[cap - 1].0 {
                continue;
            }
            let mut j = len.min(cap - 1);
            while j > 0 && k < list[j - 1].0 {
                list[j] = list[j - 1];
                j -= 1;
            }
            list[j] = (k, i as u32);
            lens[b] = (len + 1).min(cap) as u32;
        }
        let mut picks = Vec::with_capacity(params.page_size.min(pool.len()));
        for (b, &len) in lens.iter().enumerate() {
            picks.extend_from_slice(&best[b * cap..b * cap + len as usize]);
        }
        if picks.len() < params.page_size && usable_count > picks.len() {
            return None;
        }
        picks
    };
    if picks.len() > params.page_size {
        picks.select_nth_unstable(params.page_size - 1);
        picks.truncate(params.page_size);
    }
    picks.sort_unstable();
    Some(picks.into_iter().map(|(_, i)| i).collect())
}

/// The fields of in-range row `r` the score reads, as a record, from the unpacked columns.
fn record(cols: &RankColumns<'_>, r: usize) -> Packed {
    Packed {
        launch_ts: cols.launch_ts[r],
        presale_start: cols.presale_start[r],
        presale_end: cols.presale_end[r],
        campaigns: cols.campaigns[r],
        brand: cols.brand[r],
        category: cols.category[r],
        popularity: cols.popularity[r],
        ..Packed::default()
    }
}

/// Relevance plus the business terms of one candidate whose item record is `p`.
#[inline]
fn score(
    s: &Scored,
    p: &Packed,
    params: &RankParams,
    member_brands: Option<&[u8]>,
    considered_categories: Option<&[u8]>,
) -> Scored {
    let (brand, category) = (p.brand, p.category);
    let rel = if s.rel.is_nan() {
        f32::NEG_INFINITY
    } else {
        s.rel
    };
    let mut score = params.relevance * rel;
    let mut reasons = s.reasons;
    let pop = p.popularity;
    if params.popularity != 0.0 && pop > 0.0 {
        score += params.popularity * pop;
        reasons |= REASON_POPULAR;
    }
    let age = params.now - p.launch_ts;
    let new = params.new_window > 0 && (0..=params.new_window).contains(&age);
    if new {
        score += params.new_boost;
        reasons |= REASON_NEW;
    }
    if params.presale_boost != 0.0 && in_presale(p, params.now) {
        score += params.presale_boost;
        reasons |= REASON_PRESALE;
    }
    let mut campaigns = p.campaigns;
    let mut campaign = 0.0f32;
    while campaigns != 0 {
        campaign += params.campaign_boost[campaigns.trailing_zeros() as usize];
        campaigns &= campaigns - 1;
    }
    if campaign != 0.0 {
        score += campaign;
        reasons |= REASON_CAMPAIGN;
    }
    if params.member_boost != 0.0 && flag(member_brands, brand) {
        score += params.member_boost;
        reasons |= REASON_MEMBER;
    }
    if params.considered_boost != 0.0 && flag(considered_categories, category) {
        score += params.considered_boost;
        reasons |= REASON_CONSIDERED;
    }
    Scored {
        row: s.row,
        score,
        rel: s.rel,
        reasons,
        brand,
        category,
        new,
        rel_rank: 0,
    }
}

/// `pool` best first (see [`better`]) by a bucket sort on the score: candidates go to buckets by
/// linear position between the lowest and highest finite score (a monotone map, so buckets are in
/// order), then each bucket is sorted. Relevance scores spread out enough that buckets hold one or
/// two candidates, which makes this several times cheaper than a comparison sort of the pool.
fn best_first(pool: &[Scored]) -> Vec<Scored> {
    let n = pool.len();
    let (lo, hi) = pool
        .iter()
        .filter(|s| s.score.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.score), hi.max(s.score))
        });
    let buckets = n.next_power_of_two().max(2);
    // Bucket 0 and the last hold the non-finite scores below and above every finite one.
    let last = buckets + 1;
    let span = hi as f64 - lo as f64;
    let scale = if span > 0.0 {
        buckets as f64 / span
    } else {
        0.0
    };
    let bucket = |x: f32| -> usize {
        if x.is_finite() {
            // Highest score first: bucket 1 holds the top of the range.
            let b = (((hi as f64 - x as f64) * scale) as usize).min(buckets - 1);
            1 + b
        } else if x.total_cmp(&0.0).is_gt() {
            0
        } else {
            last
        }
    };
    let mut starts = vec![0u32; last + 2];
    for s in pool {
        starts[bucket(s.score) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut out: Vec<Scored> = Vec::with_capacity(n);
    let spare = out.spare_capacity_mut();
    let mut next = starts.clone();
    for s in pool {
        let b = bucket(s.score);
        spare[next[b] as usize].write(*s);
        next[b] += 1;
    }
    // SAFETY: the buckets' ranges tile 0..n and each slot was written once above.
    unsafe { out.set_len(n) };
    for w in starts.windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        if b - a > 1 {
            insertion_sort(&mut out[a..b]);
        }
    }
    out
}

/// Sorts a (usually tiny) bucket best first; a comparison sort for the odd large one.
fn insertion_sort(v: &mut [Scored]) {
    if v.len() > 24 {
        v.sort_unstable_by(better);
        return;
    }
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && better(&x, &v[j - 1]).is_lt() {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// Best first: higher score, then lower row (a total order, so results are deterministic).
fn better(a: &Scored, b: &Scored) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.row.cmp(&b.row))
}

/// `f32` bits whose unsigned order is the float order (as `total_cmp`).
#[inline]
fn ordered_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Items per brand and per category on the page being filled (index + 1; 0 = negative index).
struct Counts {
    brands: Vec<u32>,
    categories: Vec<u32>,
}

#[inline]
fn slot(index: i32) -> usize {
    if index < 0 {
        0
    } else {
        index as usize + 1
    }
}

/// Picks the next page from the untaken part of `pool` (sorted best first) and marks picks taken.
/// Returns indices into `pool` with the reason bits only the page fill knows.
fn fill_page(
    pool: &[Scored],
    taken: &mut [bool],
    params: &RankParams,
    counts: &mut Counts,
    limit: u32,
) -> Vec<(usize, u32)> {
    let mut picked: Vec<(usize, u32)> = Vec::with_capacity(params.page_size);
    counts.brands.iter_mut().for_each(|c| *c = 0);
    counts.categories.iter_mut().for_each(|c| *c = 0);
    let max_new = if params.max_new == 0 {
        usize::MAX
    } else {
        params.max_new.max(params.new_slots)
    };
    let mut new_count = 0usize;
    let max_brand = if params.max_per_brand == 0 {
        u32::MAX
    } else {
        params.max_per_brand as u32
    };
    let max_category = if params.max_per_category == 0 {
        u32::MAX
    } else {
        params.max_per_category as u32
    };
    // Pass 0: reserved slots for new items; 1: everything under the caps (brand, category, new
    // items); 2: caps relaxed, only when the pool holds too few others to fill the page.
    for pass in 0..3 {
        let want = if pass == 0 {
            params.new_slots.min(params.page_size)
        } else {
            params.page_size
        };
        if picked.len() >= want {
            continue;
        }
        let extra = [REASON_RESERVED, 0, REASON_CAP_RELAXED][pass];
        for (i, s) in pool.iter().enumerate() {
            if taken[i] || (pass == 0 && !s.new) || s.rel_rank >= limit {
                continue;
            }
            let (b, c) = (slot(s.brand), slot(s.category));
            if pass < 2
                && (counts.brands[b] >= max_brand
                    || counts.categories[c] >= max_category
                    || (s.new && new_count >= max_new))
            {
                continue;
            }
            taken[i] = true;
            picked.push((i, extra));
            new_count += s.new as usize;
            counts.brands[b] += 1;
            counts.categories[c] += 1;
            if picked.len() >= want {
                break;
            }
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cols {
        brand: Vec<i32>,
        category: Vec<i32>,
        launch: Vec<i64>,
        pstart: Vec<i64>,
        pend: Vec<i64>,
        campaigns: Vec<u64>,
        pop: Vec<f32>,
    }

    fn cols(n: usize) -> Cols {
        Cols {
            brand: (0..n as i32).map(|i| i % 3).collect(),
            category: (0..n as i32).map(|i| i % 5).collect(),
            launch: vec![0; n],
            pstart: vec![0; n],
            pend: vec![0; n],
            campaigns: vec![0; n],
            pop: vec![0.0; n],
        }
    }

    fn params(page: usize, page_size: usize) -> RankParams {
        RankParams {
            relevance: 1.0,
            popularity: 0.0,
            new_boost: 0.0,
            new_window: 0,
            new_slots: 0,
            max_new: 0,
            presale_boost: 0.0,
            campaign_boost: [0.0; 64],
            member_boost: 0.0,
            considered_boost: 0.0,
            max_per_brand: 0,
            max_per_category: 0,
            now: 1000,
            page,
            page_size,
            pool_per_page: 0.0,
            limited_sources: 0,
        }
    }

    fn run(c: &Cols, p: &RankParams, rows: &[i64], rel: &[f32]) -> RankedPage {
        let rc = RankColumns {
            brand: &c.brand,
            category: &c.category,
            launch_ts: &c.launch,
            presale_start: &c.pstart,
            presale_end: &c.pend,
            campaigns: &c.campaigns,
            popularity: &c.pop,
            packed: None,
        };
        rank(&rc, p, None, None, None, rows, rel, &vec![1u8; rows.len()]).unwrap()
    }

    #[test]
    fn orders_by_relevance_and_merges_duplicates() {
        let c = cols(10);
        let page = run(
            &c,
            &params(0, 3),
            &[4, 2, 4, 7, -1],
            &[0.1, 0.5, 0.9, 0.3, 9.0],
        );
        assert_eq!(page.rows, vec![4, 2, 7]);
        assert_eq!(page.scores, vec![0.9, 0.5, 0.3]);
        assert_eq!(page.pool, 3);
    }

    #[test]
    fn presale_items_inside_their_window_get_the_boost_and_reason() {
        let mut c = cols(4);
        c.pstart = vec![0, 900, 1100, 0];
        c.pend = vec![0, 1000, 1200, 0];
        let mut p = params(0, 4);
        p.presale_boost = 0.5;
        let page = run(&c, &p, &[0, 1, 2, 3], &[0.4, 0.1, 0.3, 0.2]);
        // now = 1000: row 1 is inside its window (ends included), row 2's has not begun
        assert_eq!(page.rows, vec![1, 0, 2, 3]);
        assert_eq!(page.scores[0], 0.1 + 0.5);
        let presale: Vec<bool> = page
            .reasons
            .iter()
            .map(|r| r & REASON_PRESALE != 0)
            .collect();
        assert_eq!(presale, vec![true, false, false, false]);
    }

    #[test]
    fn new_items_are_capped_per_page_unless_nothing_else_fills_it() {
        let mut c = cols(20);
        c.brand = vec![0; 20];
        c.category = vec![0; 20];
        // rows 0..10 are new (launched at now), and the most relevant
        c.launch = (0..20).map(|i| if i < 10 { 1000 } else { 0 }).collect();
        let rows: Vec<i64> = (0..20).collect();
        let rel: Vec<f32> = (0..20).map(|i| 20.0 - i as f32).collect();
        let mut p = params(0, 10);
        p.new_window = 100;
        p.new_boost = 1.0;
        p.max_new = 3;
        let page = run(&c, &p, &rows, &rel);
        let new = page.rows.iter().filter(|&&r| r < 10).count();
        assert_eq!((page.rows.len(), new), (10, 3));
        assert_eq!(&page.rows[..3], &[0, 1, 2]);
        // too few old items to fill the page: the cap gives way, flagged
        let page = run(&c, &p, &rows[..12], &rel[..12]);
        assert_eq!(page.rows.len(), 10);
        assert!(page.reasons.iter().any(|r| r & REASON_CAP_RELAXED != 0));
    }

    #[test]
    fn brand_cap_holds_and_pages_do_not_overlap() {
        let c = cols(30);
        let rows: Vec<i64> = (0..30).collect();
        let rel: Vec<f32> = (0..30).map(|i| 30.0 - i as f32).collect();
        let mut p = params(0, 6);
        p.max_per_brand = 2;
        let first = run(&c, &p, &rows, &rel);
        p.page = 1;
        let second = run(&c, &p, &rows, &rel);
        for page in [&first, &second] {
            assert_eq!(page.rows.len(), 6);
            for b in 0..3 {
                assert!(
                    page.rows
                        .iter()
                        .filter(|&&r| c.brand[r as usize] == b)
                        .count()
                        <= 2
                );
            }
        }
        assert!(first.rows.iter().all(|r| !second.rows.contains(r)));
    }

    #[test]
    fn caps_relax_only_to_fill_the_page() {
        let c = cols(30);
        let rows: Vec<i64> = vec![0, 3, 6, 9]; // all brand 0
        let mut p = params(0, 3);
        p.max_per_brand = 1;
        let page = run(&c, &p, &rows, &[4.0, 3.0, 2.0, 1.0]);
        assert_eq!(page.rows, vec![0, 3, 6]);
        assert_eq!(page.reasons[0] & REASON_CAP_RELAXED, 0);
        assert_ne!(page.reasons[1] & REASON_CAP_RELAXED, 0);
    }

    #[test]
    fn a_deeper_pool_re_derives_earlier_pages_as_they_were_served() {
        let mut c = cols(40);
        c.pop = (0..40).map(|i| if i >= 20 { 1.0 } else { 0.0 }).collect();
        let rows: Vec<i64> = (0..40).collect();
        let rel: Vec<f32> = (0..40).map(|i| 40.0 - i as f32).collect();
        let mut p = params(0, 5);
        p.popularity = 30.0; // deep, popular candidates would jump onto page 0 of a deeper pool
        p.pool_per_page = 10.0;
        p.limited_sources = 1;
        let served = run(&c, &p, &rows[..10], &rel[..10]); // page 0 as requested alone
        p.page = 1;
        let second = run(&c, &p, &rows, &rel); // page 1 from a pool four times as deep
        assert!(served.rows.iter().all(|r| !second.rows.contains(r)));
        assert!(served.rows.iter().chain(&second.rows).all(|&r| r < 20));
    }

    #[test]
    fn new_items_get_reserved_slots_and_boosts_apply() {
        let mut c = cols(10);
        c.launch[9] = 990; // new: launched 10 s before now
        c.campaigns[8] = 0b10;
        let mut p = params(0, 2);
        p.new_window = 100;
        p.new_slots = 1;
        p.campaign_boost[1] = 20.0;
        let rows: Vec<i64> = (0..10).collect();
        let rel: Vec<f32> = (0..10).map(|i| 10.0 - i as f32).collect();
        let page = run(&c, &p, &rows, &rel);
        assert_eq!(page.rows, vec![8, 9]);
        assert_ne!(page.reasons[0] & REASON_CAMPAIGN, 0);
        assert_ne!(page.reasons[1] & REASON_RESERVED, 0);
        assert_ne!(page.reasons[1] & REASON_NEW, 0);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p peakrec-core timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn time_rank_1000_candidates() {
        let n = 200_000usize;
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let brand: Vec<i32> = (0..n).map(|_| (next() % 200) as i32).collect();
        let category: Vec<i32> = (0..n).map(|_| (next() % 60) as i32).collect();
        let launch = vec![0i64; n];
        let campaigns = vec![0u64; n];
        let pop = vec![0.5f32; n];
        let cols = RankColumns {
            brand: &brand,
            category: &category,
            launch_ts: &launch,
            presale_start: &launch,
            presale_end: &launch,
            campaigns: &campaigns,
            popularity: &pop,
            packed: None,
        };
        let rows: Vec<i64> = (0..1000).map(|_| (next() % n as u64) as i64).collect();
        let rel: Vec<f32> = (0..1000).map(|_| (next() % 1000) as f32 / 1000.0).collect();
        let src = vec![1u8; 1000];
        let params = RankParams {
            relevance: 1.0,
            popularity: 0.0,
            new_boost: 0.0,
            new_window: 0,
            new_slots: 0,
            max_new: 0,
            presale_boost: 0.0,
            campaign_boost: [0.0; 64],
            member_boost: 0.0,
            considered_boost: 0.0,
            max_per_brand: 5,
            max_per_category: 0,
            now: 0,
            page: 0,
            page_size: 100,
            pool_per_page: 0.0,
            limited_sources: 0,
        };
        for _ in 0..100 {
            rank(&cols, &params, None, None, None, &rows, &rel, &src).unwrap();
        }
        let t = std::time::Instant::now();
        for _ in 0..10_000 {
            std::hint::black_box(
                rank(&cols, &params, None, None, None, &rows, &rel, &src).unwrap(),
            );
        }
        eprintln!("rank: {:?} per call", t.elapsed() / 10_000);
    }
}
