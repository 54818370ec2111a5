//! Which items a shopper may be shown: one pass over item rows into a [`Bitset`], or a check of
//! just some rows (ANN candidates), under the same rules.
//!
//! An item is eligible when it is in stock and on sale (live state), sellable in the shopper's
//! region, inside the price range, allowed by the brand and category lists, not member-only (or
//! the shopper is a member of its brand), launched — or, for a presale item, inside its presale
//! window — and not excluded (purchased, or excluded by the request).

use crate::bitset::Bitset;
use crate::error::{invalid, Result};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU8, Ordering::Relaxed};

/// Immutable per-item columns of a bundle, row-aligned.
#[derive(Clone, Copy)]
pub struct ItemColumns<'a> {
    pub brand: &'a [i32],
    pub category: &'a [i32],
    /// `[n * region_words]`: bit `r` of row `i` is word `i * region_words + r / 64`, bit `r % 64`.
    pub regions: &'a [u64],
    pub region_words: usize,
    pub launch_ts: &'a [i64],
    /// 0 = not a presale item.
    pub presale_start: &'a [i64],
    pub presale_end: &'a [i64],
    pub member_only: &'a [u8],
    /// The same columns as records (see [`pack`]); used instead of them when given.
    pub packed: Option<&'a [Packed]>,
}

impl ItemColumns<'_> {
    pub fn len(&self) -> usize {
        self.brand.len()
    }

    pub fn is_empty(&self) -> bool {
        self.brand.is_empty()
    }

    pub fn check(&self) -> Result<()> {
        let n = self.len();
        for (name, len) in [
            ("category", self.category.len()),
            ("launch_ts", self.launch_ts.len()),
            ("presale_start", self.presale_start.len()),
            ("presale_end", self.presale_end.len()),
            ("member_only", self.member_only.len()),
        ] {
            if len != n {
                return Err(invalid(format!(
                    "items/{name} has {len} rows, items/brand has {n}"
                )));
            }
        }
        if self.packed.is_some_and(|p| p.len() != n) {
            return Err(invalid("packed item records do not match the item columns"));
        }
        if self.region_words == 0 || self.regions.len() != n * self.region_words {
            return Err(invalid(format!(
                "items/regions has {} words, expected {n} rows x {} words",
                self.regions.len(),
                self.region_words
            )));
        }
        Ok(())
    }
}

/// The per-item fields the eligibility check and the score read, in one record per row: a check
/// of a scattered candidate then costs one cache miss here instead of one per column. Aligned to
/// a 64-byte line so a record never straddles two.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Packed {
    pub launch_ts: i64,
    pub presale_start: i64,
    pub presale_end: i64,
    pub campaigns: u64,
    /// The item's first regions word (regions 0..64), so most requests read no regions column.
    pub region0: u64,
    pub brand: i32,
    pub category: i32,
    pub popularity: f32,
    pub member_only: u8,
}

/// Packs `items` (and the score's `campaigns` and `popularity` columns) into records.
pub fn pack(items: &ItemColumns<'_>, campaigns: &[u64], popularity: &[f32]) -> Result<Records> {
    items.check()?;
    let n = items.len();
    if campaigns.len() != n || popularity.len() != n {
        return Err(invalid(format!(
            "items/campaigns has {} rows and items/popularity {}, items/brand has {n}",
            campaigns.len(),
            popularity.len()
        )));
    }
    Ok(Records::from_fn(n, |i| Packed {
        launch_ts: items.launch_ts[i],
        presale_start: items.presale_start[i],
        presale_end: items.presale_end[i],
        campaigns: campaigns[i],
        region0: items.regions[i * items.region_words],
        brand: items.brand[i],
        category: items.category[i],
        popularity: popularity[i],
        member_only: items.member_only[i],
    }))
}

/// The packed records of a catalogue, in memory backed by 2 MiB pages where the OS allows.
///
/// Candidates are scattered over tens of MB of records: with 4 KiB pages each one is a TLB miss
/// and a page walk (more than the data miss itself), with 2 MiB pages the whole table is a few
/// dozen TLB entries.
pub struct Records {
    ptr: std::ptr::NonNull<Packed>,
    len: usize,
}

// SAFETY: `Records` owns its allocation like a `Box<[Packed]>`.
unsafe impl Send for Records {}
unsafe impl Sync for Records {}

const HUGE_PAGE: usize = 2 << 20;

impl Records {
    fn layout(len: usize) -> std::alloc::Layout {
        let size = (len * std::mem::size_of::<Packed>()).next_multiple_of(HUGE_PAGE);
        std::alloc::Layout::from_size_align(size.max(HUGE_PAGE), HUGE_PAGE)
            .expect("record table size")
    }

    /// Records `0..len`, record `i` being `f(i)`.
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> Packed) -> Self {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw as *mut Packed) else {
            std::alloc::handle_alloc_error(layout)
        };
        // Advised before the first write, so the pages are faulted in as huge pages.
        #[cfg(target_os = "linux")]
        // SAFETY: advice on memory this allocation owns; failure only means 4 KiB pages.
        unsafe {
            libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE);
        }
        for i in 0..len {
            // SAFETY: `i < len` records fit in the allocation.
            unsafe { ptr.as_ptr().add(i).write(f(i)) };
        }
        Records { ptr, len }
    }

    pub fn as_slice(&self) -> &[Packed] {
        // SAFETY: `ptr` holds `len` initialised records for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        // SAFETY: allocated in `from_fn` with this same layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len)) }
    }
}

/// Mutable per-item state (stock, price, availability), row-aligned with the bundle.
///
/// Another thread or process updates these columns in place while requests read them (the
/// server's shared item-state file), so they are atomics read with `Relaxed` loads: sound in
/// Rust's memory model, and the same plain loads on the hardware. A read sees an item's old or
/// new value; nothing orders one item's columns against another's, nor is needed.
#[derive(Clone, Copy)]
pub struct LiveState<'a> {
    pub stock: &'a [AtomicI32],
    /// `f32` bits.
    pub price: &'a [AtomicU32],
    pub available: &'a [AtomicU8],
}

impl LiveState<'_> {
    #[inline]
    fn stock(&self, row: usize) -> i32 {
        self.stock[row].load(Relaxed)
    }

    #[inline]
    fn price(&self, row: usize) -> f32 {
        f32::from_bits(self.price[row].load(Relaxed))
    }

    #[inline]
    fn available(&self, row: usize) -> bool {
        self.available[row].load(Relaxed) != 0
    }
}

/// One request's restrictions.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub region: usize,
    /// Unix seconds.
    pub now: i64,
    pub price_min: f32,
    pub price_max: f32,
    /// `[n_brands]`, 1 = allowed; `None` = every brand.
    pub brand_ok: Option<&'a [u8]>,
    /// `[n_categories]`, 1 = allowed; `None` = every category.
    pub category_ok: Option<&'a [u8]>,
    /// `[n_brands]`, 1 = the shopper is a member; `None` = a member of none.
    pub member_brands: Option<&'a [u8]>,
    /// Item rows never to show, sorted ascending.
    pub excluded: &'a [i64],
}

/// Rules bound to the columns they read; built once per request by [`Eligibility::new`].
#[derive(Clone, Copy)]
pub struct Eligibility<'a> {
    items: ItemColumns<'a>,
    live: LiveState<'a>,
    rules: Rules<'a>,
    /// The price range is bounded (otherwise prices are not read: one cache miss less per row).
    price_bounded: bool,
}

/// Whether the item of record `p` is inside its presale window at `now` (a presale item has
/// `presale_start != 0`; the window includes both ends).
#[inline]
pub fn in_presale(p: &Packed, now: i64) -> bool {
    (p.presale_start != 0) & (p.presale_start <= now) & (now <= p.presale_end)
}

/// An item sells once launched, and before its launch inside its presale window. A presale
/// window never hides an item that has already launched.
#[inline]
fn sellable_at(p: &Packed, now: i64) -> bool {
    (p.launch_ts <= now) | in_presale(p, now)
}

#[inline]
fn mask_allows(mask: Option<&[u8]>, index: i32) -> bool {
    match mask {
        None => true,
        Some(m) => usize::try_from(index)
            .ok()
            .and_then(|i| m.get(i))
            .is_some_and(|&v| v != 0),
    }
}

impl<'a> Eligibility<'a> {
    pub fn new(items: ItemColumns<'a>, live: LiveState<'a>, rules: Rules<'a>) -> Result<Self> {
        items.check()?;
        let n = items.len();
        for (name, len) in [
            ("stock", live.stock.len()),
            ("price", live.price.len()),
            ("available", live.available.len()),
        ] {
            if len != n {
                return Err(invalid(format!(
                    "item state {name} has {len} rows, the bundle has {n} items"
                )));
            }
        }
        if rules.region >= items.region_words * 64 {
            return Err(invalid(format!(
                "region index {} is out of range",
                rules.region
            )));
        }
        if rules.price_min.is_nan() || rules.price_max.is_nan() {
            return Err(invalid("price range must not be NaN"));
        }
        if rules.price_min > rules.price_max {
            return Err(invalid(format!(
                "filters.price_min {} is above filters.price_max {}",
                rules.price_min, rules.price_max
            )));
        }
        if rules.excluded.windows(2).any(|w| w[0] > w[1]) {
            return Err(invalid("excluded rows must be sorted"));
        }
        let price_bounded = rules.price_min > f32::MIN || rules.price_max < f32::MAX;
        Ok(Eligibility {
            items,
            live,
            rules,
            price_bounded,
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The regions word of `row` holding the request's region; `p` is the row's record.
    #[inline]
    fn region_word(&self, row: usize, p: &Packed) -> u64 {
        let (it, region) = (&self.items, self.rules.region);
        if region < 64 && it.packed.is_some() {
            p.region0
        } else {
            it.regions[row * it.region_words + (region >> 6)]
        }
    }

    /// The live-state rules for an in-range `row`: on sale, in stock, inside the price range.
    /// The tests are and-ed without branching, so a loop over scattered candidates keeps many of
    /// their loads in flight at once.
    #[inline]
    pub fn live_ok(&self, row: usize) -> bool {
        let live = &self.live;
        live.available(row) & (live.stock(row) > 0) & self.price_ok(row)
    }

    /// `row`'s price is in the range; always when the range is unbounded, without reading it (so
    /// only a price filter excludes a NaN price; catalogues and state updates reject them).
    #[inline]
    fn price_ok(&self, row: usize) -> bool {
        let r = &self.rules;
        !self.price_bounded || {
            let price = self.live.price(row);
            (price >= r.price_min) & (price <= r.price_max)
        }
    }

    /// Asks for the cache lines `row`'s check reads, so that several rows' checks overlap.
    #[inline]
    pub fn prefetch(&self, row: usize) {
        let (it, live) = (&self.items, &self.live);
        if row < self.len() {
            crate::prefetch(&live.stock[row]);
            crate::prefetch(&live.available[row]);
            if self.price_bounded {
                crate::prefetch(&live.price[row]);
            }
            if let Some(packed) = it.packed {
                crate::prefetch(&packed[row]);
            }
        }
    }

    /// Every rule except the exclusion list.
    #[inline]
    fn passes(&self, row: usize) -> bool {
        let (it, live, r) = (&self.items, &self.live, &self.rules);
        if live.stock(row) <= 0 || !live.available(row) {
            return false;
        }
        if !self.price_ok(row) {
            return false;
        }
        let p = match it.packed {
            Some(packed) => packed[row],
            None => Packed {
                launch_ts: it.launch_ts[row],
                presale_start: it.presale_start[row],
                presale_end: it.presale_end[row],
                campaigns: 0,
                region0: 0,
                brand: it.brand[row],
                category: it.category[row],
                popularity: 0.0,
                member_only: it.member_only[row],
            },
        };
        if (self.region_word(row, &p) >> (r.region & 63)) & 1 == 0 {
            return false;
        }
        if !mask_allows(r.brand_ok, p.brand) || !mask_allows(r.category_ok, p.category) {
            return false;
        }
        if p.member_only != 0
            && !(r.member_brands.is_some() && mask_allows(r.member_brands, p.brand))
        {
            return false;
        }
        sellable_at(&p, r.now)
    }

    /// The packed records the checks read, when the columns were packed.
    pub fn packed(&self) -> Option<&'a [Packed]> {
        self.items.packed
    }

    /// The rules [`Self::live_ok`] leaves out, for an in-range `row` whose packed record `p` the
    /// caller already loaded (the ranking kernel reads it for the score too); without branching
    /// on the record, as [`Self::live_ok`].
    #[inline]
    pub fn admits_record(&self, row: usize, p: &Packed) -> bool {
        let r = &self.rules;
        let region = (self.region_word(row, p) >> (r.region & 63)) & 1;
        let member_ok = (p.member_only == 0)
            | (r.member_brands.is_some() && mask_allows(r.member_brands, p.brand));
        let ok = (region != 0)
            & mask_allows(r.brand_ok, p.brand)
            & mask_allows(r.category_ok, p.category)
            & member_ok
            & sellable_at(p, r.now);
        ok && (r.excluded.is_empty() || r.excluded.binary_search(&(row as i64)).is_err())
    }

    /// Is `row` eligible (`false` for rows out of range).
    pub fn contains(&self, row: i64) -> bool {
        usize::try_from(row)
            .ok()
            .is_some_and(|i| i < self.len() && self.passes(i))
            && self.rules.excluded.binary_search(&row).is_err()
    }

    /// All eligible rows.
    pub fn bitset(&self) -> Bitset {
        let n = self.len();
        let mut words = vec![0u64; n.div_ceil(64)];
        for (w, word) in words.iter_mut().enumerate() {
            let base = w << 6;
            let end = (base + 64).min(n);
            let mut bits = 0u64;
            for row in base..end {
                bits |= (self.passes(row) as u64) << (row - base);
            }
            *word = bits;
        }
        let mut set = Bitset::from_words(words, n);
        for &row in self.rules.excluded {
            if row >= 0 {
                set.remove(row as usize);
            }
        }
        set
    }

    /// 1 for each of `rows` that is eligible, else 0.
    pub fn check_rows(&self, rows: &[i64]) -> Vec<u8> {
        rows.iter().map(|&r| self.contains(r) as u8).collect()
    }

    /// Fraction of `samples` evenly spread rows that are eligible: a selectivity estimate that
    /// costs `samples` row checks instead of `n`.
    pub fn sample_fraction(&self, samples: usize) -> f64 {
        let n = self.len();
        if n == 0 {
            return 0.0;
        }
        let samples = samples.clamp(1, n);
        let hits = (0..samples)
            .filter(|&s| self.contains((s * n / samples) as i64))
            .count();
        hits as f64 / samples as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Data {
        brand: Vec<i32>,
        category: Vec<i32>,
        regions: Vec<u64>,
        launch: Vec<i64>,
        pstart: Vec<i64>,
        pend: Vec<i64>,
        member_only: Vec<u8>,
        stock: Vec<AtomicI32>,
        price: Vec<AtomicU32>,
        available: Vec<AtomicU8>,
    }

    fn data() -> Data {
        // row: 0 ok, 1 out of stock, 2 other region, 3 member-only brand 1, 4 presale 100..200,
        // 5 launches at 500, 6 brand 2, 7 price 50, 8 launched at 0 with a presale 100..200
        Data {
            brand: vec![0, 0, 0, 1, 0, 0, 2, 0, 0],
            category: vec![0, 0, 0, 0, 1, 0, 0, 0, 0],
            regions: vec![1, 1, 2, 1, 1, 1, 1, 1, 1],
            launch: vec![0, 0, 0, 0, 300, 500, 0, 0, 0],
            pstart: vec![0, 0, 0, 0, 100, 0, 0, 0, 100],
            pend: vec![0, 0, 0, 0, 200, 0, 0, 0, 200],
            member_only: vec![0, 0, 0, 1, 0, 0, 0, 0, 0],
            stock: Vec::from([1, 0, 1, 1, 1, 1, 1, 1, 1].map(AtomicI32::new)),
            price: Vec::from(
                [10.0f32, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 50.0, 10.0]
                    .map(|p| AtomicU32::new(p.to_bits())),
            ),
            available: (0..9).map(|_| AtomicU8::new(1)).collect(),
        }
    }

    fn rules<'a>(now: i64) -> Rules<'a> {
        Rules {
            region: 0,
            now,
            price_min: f32::NEG_INFINITY,
            price_max: f32::INFINITY,
            brand_ok: None,
            category_ok: None,
            member_brands: None,
            excluded: &[],
        }
    }

    fn columns(d: &Data) -> (ItemColumns<'_>, LiveState<'_>) {
        let items = ItemColumns {
            brand: &d.brand,
            category: &d.category,
            regions: &d.regions,
            region_words: 1,
            launch_ts: &d.launch,
            presale_start: &d.pstart,
            presale_end: &d.pend,
            member_only: &d.member_only,
            packed: None,
        };
        let live = LiveState {
            stock: &d.stock,
            price: &d.price,
            available: &d.available,
        };
        (items, live)
    }

    fn eligible(d: &Data, r: Rules<'_>) -> Vec<i64> {
        let (items, live) = columns(d);
        let e = Eligibility::new(items, live, r).unwrap();
        let rows = e.bitset().rows();
        let checked: Vec<i64> = (0..9).filter(|&r| e.contains(r)).collect();
        assert_eq!(rows, checked, "bitset and row checks disagree");
        rows
    }

    #[test]
    fn default_rules_drop_stock_region_member_and_unlaunched() {
        assert_eq!(eligible(&data(), rules(0)), vec![0, 6, 7, 8]);
    }

    #[test]
    fn presale_items_sell_inside_their_window_and_after_launch() {
        let d = data();
        assert!(eligible(&d, rules(150)).contains(&4));
        assert!(!eligible(&d, rules(250)).contains(&4));
        assert!(eligible(&d, rules(300)).contains(&4));
        assert!(eligible(&d, rules(600)).contains(&5));
    }

    #[test]
    fn a_later_presale_window_does_not_hide_a_launched_item() {
        let d = data();
        for now in [50, 150, 250] {
            assert!(eligible(&d, rules(now)).contains(&8), "hidden at {now}");
        }
        let p = Packed {
            presale_start: 100,
            presale_end: 200,
            ..Packed::default()
        };
        assert!(!in_presale(&p, 99) && in_presale(&p, 100) && in_presale(&p, 200));
        assert!(!in_presale(&p, 201));
    }

    #[test]
    fn live_state_updates_are_seen_by_the_next_check() {
        let d = data();
        let (items, live) = columns(&d);
        let e = Eligibility::new(items, live, rules(0)).unwrap();
        assert!(e.contains(0));
        d.stock[0].store(0, Relaxed);
        assert!(!e.contains(0));
        d.stock[0].store(3, Relaxed);
        d.available[0].store(0, Relaxed);
        assert!(!e.contains(0));
    }

    #[test]
    fn members_see_member_only_items_of_their_brand() {
        let d = data();
        let members = [0u8, 1, 0];
        let r = Rules {
            member_brands: Some(&members),
            ..rules(0)
        };
        assert!(eligible(&d, r).contains(&3));
        let other = [1u8, 0, 0];
        let r = Rules {
            member_brands: Some(&other),
            ..rules(0)
        };
        assert!(!eligible(&d, r).contains(&3));
    }

    #[test]
    fn brand_price_and_exclusions_restrict() {
        let d = data();
        let block2 = [1u8, 1, 0];
        let r = Rules {
            brand_ok: Some(&block2),
            price_max: 20.0,
            excluded: &[0, 8],
            ..rules(0)
        };
        assert_eq!(eligible(&d, r), Vec::<i64>::new());
    }

    #[test]
    fn contradictory_price_range_is_invalid() {
        let d = data();
        let (items, live) = columns(&d);
        let r = Rules {
            price_min: 5.0,
            price_max: 1.0,
            ..rules(0)
        };
        assert!(Eligibility::new(items, live, r).is_err());
    }
}
