//! Bilingual text search: one analyzer for documents and queries, and a BM25 index stored as CSR
//! postings in plain arrays (saved as `.npy`, memory-mapped at serve time).
//!
//! Analyzer: Unicode NFKC, lowercase, then tokens:
//! * a run of letters/digits outside CJK scripts is one word (`"iPhone15"` -> `"iphone15"`);
//! * a run of CJK characters (Han, Hiragana, Katakana, Hangul) gives its overlapping bigrams
//!   (`"连衣裙"` -> `"连衣"`, `"衣裙"`), or the character itself when the run is one character;
//! * everything else separates tokens.
//!
//! Documents also get field tokens: `brand:<brand>` and `cat:<component>` for every component of a
//! `>`-separated category path, besides the words of the brand and category text. A query may name
//! them the same way (`"brand:nike dress"`).
//!
//! BM25 (classic form, Lucene idf): for each distinct query term t in document d,
//! `idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`, with
//! `idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`. Top-N search is document-at-a-time MaxScore: it
//! returns exactly the exhaustive top-N (score desc, row asc) without scoring every document.

use crate::error::{invalid, Result};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use unicode_normalization::UnicodeNormalization;

/// Longest query accepted, in Unicode characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Prefix of brand field tokens.
pub const BRAND_PREFIX: &str = "brand:";
/// Prefix of category field tokens.
pub const CATEGORY_PREFIX: &str = "cat:";
/// Separator of category path components (`"服饰>女装>连衣裙"`).
pub const CATEGORY_SEPARATOR: char = '>';
/// Postings per block of `block_max_score` (the last block of a term may be shorter).
pub const POSTINGS_BLOCK: usize = 128;

// ---------------------------------------------------------------------------------------------
// Analyzer
// ---------------------------------------------------------------------------------------------

/// True for letters of the CJK scripts that are split into bigrams (Han, kana, Hangul).
#[inline]
pub fn is_cjk(c: char) -> bool {
    // Punctuation inside these blocks (e.g. the katakana middle dot) still separates tokens.
    let in_block = matches!(c as u32,
        0x1100..=0x11FF        // Hangul Jamo
        | 0x3040..=0x309F      // Hiragana
        | 0x30A0..=0x30FF      // Katakana
        | 0x3130..=0x318F      // Hangul compatibility Jamo
        | 0x31F0..=0x31FF      // Katakana phonetic extensions
        | 0x3400..=0x4DBF      // Han extension A
        | 0x4E00..=0x9FFF      // Han unified ideographs
        | 0xA960..=0xA97F      // Hangul Jamo extended A
        | 0xAC00..=0xD7FF      // Hangul syllables, Jamo extended B
        | 0xF900..=0xFAFF      // Han compatibility ideographs
        | 0x20000..=0x3134F); // Han extensions B..G
    in_block && c.is_alphanumeric()
}

/// NFKC, then lowercase. ASCII text skips normalisation (NFKC leaves it unchanged).
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.nfkc().flat_map(char::to_lowercase).collect()
    }
}

/// Appends the tokens of already-normalised text to `out`.
fn tokenize_normalized(text: &str, out: &mut Vec<String>) {
    let mut word = String::new();
    let mut run: Vec<char> = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, out);
            run.push(c);
        } else if c.is_alphanumeric() {
            flush_run(&mut run, out);
            word.push(c);
        } else {
            flush_word(&mut word, out);
            flush_run(&mut run, out);
        }
    }
    flush_word(&mut word, out);
    flush_run(&mut run, out);
}

fn flush_word(word: &mut String, out: &mut Vec<String>) {
    if !word.is_empty() {
        out.push(std::mem::take(word));
    }
}

fn flush_run(run: &mut Vec<char>, out: &mut Vec<String>) {
    match run.len() {
        0 => {}
        1 => out.push(run[0].to_string()),
        _ => out.extend(run.windows(2).map(|pair| pair.iter().collect::<String>())),
    }
    run.clear();
}

/// Tokens of free text (titles, brand and category names): NFKC, lowercase, words and CJK bigrams.
pub fn analyze(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    tokenize_normalized(&normalize(text), &mut out);
    out
}

/// Normalised value of a field token: NFKC, lowercase, whitespace trimmed and collapsed to one space.
pub fn field_value(value: &str) -> String {
    normalize(value)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Tokens of a query: like [`analyze`], except that a whitespace-separated chunk starting with
/// `brand:` or `cat:` is kept whole as a field token (`"brand:nike"`).
pub fn analyze_query(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in normalize(text).split_whitespace() {
        let is_field = [BRAND_PREFIX, CATEGORY_PREFIX]
            .iter()
            .any(|p| chunk.len() > p.len() && chunk.starts_with(p));
        if is_field {
            out.push(chunk.to_string());
        } else {
            tokenize_normalized(chunk, &mut out);
        }
    }
    out
}

/// Tokens of one item: its title's, its brand's words plus `brand:<brand>`, and for every
/// component of the category path its words plus `cat:<component>`. Empty fields add nothing.
pub fn analyze_document(title: &str, brand: &str, category: &str) -> Vec<String> {
    let mut out = analyze(title);
    let brand = field_value(brand);
    if !brand.is_empty() {
        tokenize_normalized(&brand, &mut out);
        out.push(format!("{BRAND_PREFIX}{brand}"));
    }
    for component in normalize(category).split(CATEGORY_SEPARATOR) {
        let component = component.split_whitespace().collect::<Vec<_>>().join(" ");
        if !component.is_empty() {
            tokenize_normalized(&component, &mut out);
            out.push(format!("{CATEGORY_PREFIX}{component}"));
        }
    }
    out
}

/// Rejects an empty or whitespace-only query, or one longer than [`MAX_QUERY_CHARS`].
pub fn check_query(query: &str) -> Result<()> {
    if query.trim().is_empty() {
        return Err(invalid("query must not be empty or whitespace only"));
    }
    let n_chars = query.chars().count();
    if n_chars > MAX_QUERY_CHARS {
        return Err(invalid(format!(
            "query has {n_chars} characters; at most {MAX_QUERY_CHARS} are allowed"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Index build
// ---------------------------------------------------------------------------------------------

/// BM25 parameters: `k1` >= 0 (term-frequency saturation), `b` in [0, 1] (length normalisation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 1.2, b: 0.75 }
    }
}

impl Bm25Params {
    pub fn check(&self) -> Result<()> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(invalid(format!(
                "k1 must be a finite number >= 0, got {}",
                self.k1
            )));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(invalid(format!(
                "b must be between 0 and 1, got {}",
                self.b
            )));
        }
        Ok(())
    }
}

/// A built index, every part an array ready to be saved as `.npy`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextIndexData {
    /// UTF-8 of the sorted terms, concatenated.
    pub vocab_bytes: Vec<u8>,
    /// `[n_terms + 1]`: term t is `vocab_bytes[offsets[t]..offsets[t + 1]]`.
    pub vocab_offsets: Vec<i64>,
    /// `[n_terms + 1]`: postings of term t are `indptr[t]..indptr[t + 1]`.
    pub postings_indptr: Vec<i64>,
    /// `[n_postings]`: internal document ids, ascending within each term.
    pub postings_docs: Vec<i32>,
    /// `[n_postings]`: term frequency in the document (saturates at 65535).
    pub postings_tf: Vec<u16>,
    /// `[n_docs]`: number of tokens of each document, by row.
    pub doc_len: Vec<u32>,
    /// `[n_docs]`: item row of each internal document id. Internal ids number the documents by
    /// length (shortest first, then by row), so high scores come early in every postings list.
    pub doc_row: Vec<i32>,
    /// `[n_docs]`: `k1 * (1 - b + b * dl / avgdl)`, the BM25 length term, by internal id.
    pub doc_norm: Vec<f32>,
    /// `[n_terms]`: Lucene idf of each term.
    pub term_idf: Vec<f32>,
    /// `[n_terms]`: largest score contribution of each term (MaxScore upper bound).
    pub term_max_score: Vec<f32>,
    /// `[n_terms + 1]`: blocks of term t are `block_indptr[t]..block_indptr[t + 1]`.
    pub block_indptr: Vec<i64>,
    /// `[n_blocks]`: largest contribution within each block of [`POSTINGS_BLOCK`] postings.
    pub block_max_score: Vec<f32>,
    pub avg_doc_len: f64,
    pub params: Bm25Params,
}

impl TextIndexData {
    /// Borrowed view of the arrays, the form searched.
    pub fn parts(&self) -> IndexParts<'_> {
        IndexParts {
            vocab_bytes: &self.vocab_bytes,
            vocab_offsets: &self.vocab_offsets,
            postings_indptr: &self.postings_indptr,
            postings_docs: &self.postings_docs,
            postings_tf: &self.postings_tf,
            doc_row: &self.doc_row,
            doc_norm: &self.doc_norm,
            term_idf: &self.term_idf,
            term_max_score: &self.term_max_score,
            block_indptr: &self.block_indptr,
            block_max_score: &self.block_max_score,
            k1: self.params.k1,
        }
    }
}

/// Postings of one block of consecutive documents, with block-local term ids.
struct BlockPostings {
    terms: Vec<String>,
    /// (local term, document row, tf), grouped by document in row order.
    postings: Vec<(u32, u32, u16)>,
    doc_len: Vec<u32>,
}

const BUILD_BLOCK: usize = 2048;

fn index_block<'a>(
    start: usize,
    end: usize,
    field: &impl Fn(usize) -> (&'a str, &'a str, &'a str),
) -> BlockPostings {
    let mut local: HashMap<String, u32> = HashMap::new();
    let mut block = BlockPostings {
        terms: Vec::new(),
        postings: Vec::new(),
        doc_len: Vec::with_capacity(end - start),
    };
    for row in start..end {
        let (title, brand, category) = field(row);
        let mut tokens = analyze_document(title, brand, category);
        block.doc_len.push(tokens.len() as u32);
        tokens.sort_unstable();
        let mut i = 0;
        while i < tokens.len() {
            let mut j = i + 1;
            while j < tokens.len() && tokens[j] == tokens[i] {
                j += 1;
            }
            let tf = (j - i).min(u16::MAX as usize) as u16;
            let term = std::mem::take(&mut tokens[i]);
            let next_id = block.terms.len() as u32;
            let id = *local.entry(term).or_insert_with_key(|t| {
                block.terms.push(t.clone());
                next_id
            });
            block.postings.push((id, row as u32, tf));
            i = j;
        }
    }
    block
}

fn check_columns(n: usize, brands: Option<&[String]>, categories: Option<&[String]>) -> Result<()> {
    for (name, column) in [("brands", brands), ("categories", categories)] {
        if let Some(column) = column {
            if column.len() != n {
                return Err(invalid(format!(
                    "{name} has {} entries but titles has {n}",
                    column.len()
                )));
            }
        }
    }
    Ok(())
}

/// [`analyze_document`] of every row, in parallel on the current rayon pool.
pub fn analyze_documents(
    titles: &[String],
    brands: Option<&[String]>,
    categories: Option<&[String]>,
) -> Result<Vec<Vec<String>>> {
    check_columns(titles.len(), brands, categories)?;
    Ok((0..titles.len())
        .into_par_iter()
        .map(|row| {
            analyze_document(
                &titles[row],
                brands.map_or("", |b| b[row].as_str()),
                categories.map_or("", |c| c[row].as_str()),
            )
        })
        .collect())
}

/// Builds the index of `titles[i]` (+ `brands[i]`, `categories[i]` when given) for rows `0..n`.
/// Runs on the current rayon pool; the result does not depend on the thread count.
pub fn build(
    titles: &[String],
    brands: Option<&[String]>,
    categories: Option<&[String]>,
    params: Bm25Params,
) -> Result<TextIndexData> {
    params.check()?;
    let n = titles.len();
    if n == 0 {
        return Err(invalid(
            "titles is empty; an index needs at least one document",
        ));
    }
    if n > i32::MAX as usize {
        return Err(invalid(format!(
            "{n} titles exceed the {} rows an index holds",
            i32::MAX
        )));
    }
    check_columns(n, brands, categories)?;
    let field = |row: usize| {
        (
            titles[row].as_str(),
            brands.map_or("", |b| b[row].as_str()),
            categories.map_or("", |c| c[row].as_str()),
        )
    };
    let n_blocks = n.div_ceil(BUILD_BLOCK);
    let blocks: Vec<BlockPostings> = (0..n_blocks)
        .into_par_iter()
        .map(|k| index_block(k * BUILD_BLOCK, ((k + 1) * BUILD_BLOCK).min(n), &field))
        .collect();

    // Global vocabulary: sorted distinct terms; block-local ids map into it.
    let mut vocab: Vec<&str> = blocks
        .iter()
        .flat_map(|b| b.terms.iter().map(String::as_str))
        .collect();
    vocab.par_sort_unstable();
    vocab.dedup();
    let global_ids: Vec<Vec<u32>> = blocks
        .par_iter()
        .map(|b| {
            b.terms
                .iter()
                .map(|t| vocab.binary_search(&t.as_str()).expect("term in vocab") as u32)
                .collect()
        })
        .collect();

    let n_terms = vocab.len();
    let mut df = vec![0i64; n_terms];
    for (block, ids) in blocks.iter().zip(&global_ids) {
        for &(local, _, _) in &block.postings {
            df[ids[local as usize] as usize] += 1;
        }
    }
    let mut postings_indptr = Vec::with_capacity(n_terms + 1);
    postings_indptr.push(0i64);
    for &count in &df {
        postings_indptr.push(postings_indptr.last().unwrap() + count);
    }
    let n_postings = *postings_indptr.last().unwrap() as usize;
    let mut postings_docs = vec![0i32; n_postings];
    let mut postings_tf = vec![0u16; n_postings];
    let doc_len: Vec<u32> = blocks
        .iter()
        .flat_map(|b| b.doc_len.iter().copied())
        .collect();
    // Internal ids by length: the top scores come first and block maxima fall along each list,
    // so once the threshold is set whole blocks are skipped.
    let mut doc_row: Vec<i32> = (0..n as i32).collect();
    doc_row.par_sort_unstable_by_key(|&row| (doc_len[row as usize], row));
    // Where each row's postings are: (block, start, end) in that block's postings.
    let mut row_postings = vec![(0u32, 0u32, 0u32); n];
    for (k, block) in blocks.iter().enumerate() {
        let p = &block.postings;
        let mut i = 0;
        while i < p.len() {
            let mut j = i + 1;
            while j < p.len() && p[j].1 == p[i].1 {
                j += 1;
            }
            row_postings[p[i].1 as usize] = (k as u32, i as u32, j as u32);
            i = j;
        }
    }
    let mut cursor: Vec<i64> = postings_indptr[..n_terms].to_vec();
    // Documents in internal-id order: ids come out ascending within each term.
    for (internal, &row) in doc_row.iter().enumerate() {
        let (k, start, end) = row_postings[row as usize];
        let (block, ids) = (&blocks[k as usize], &global_ids[k as usize]);
        for &(local, _, tf) in &block.postings[start as usize..end as usize] {
            let t = ids[local as usize] as usize;
            let at = cursor[t] as usize;
            postings_docs[at] = internal as i32;
            postings_tf[at] = tf;
            cursor[t] += 1;
        }
    }
    drop(row_postings);

    let mut vocab_bytes = Vec::with_capacity(vocab.iter().map(|t| t.len()).sum());
    let mut vocab_offsets = Vec::with_capacity(n_terms + 1);
    vocab_offsets.push(0i64);
    for term in &vocab {
        vocab_bytes.extend_from_slice(term.as_bytes());
        vocab_offsets.push(vocab_bytes.len() as i64);
    }
    drop(vocab);

    drop(blocks);
    let avg_doc_len = doc_len.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
    let internal_len: Vec<u32> = doc_row.iter().map(|&r| doc_len[r as usize]).collect();
    let doc_norm = doc_norms(&internal_len, avg_doc_len, params);
    let term_idf: Vec<f32> = df.iter().map(|&d| idf(n as u64, d as u64)).collect();
    let term_blocks: Vec<Vec<f32>> = (0..n_terms)
        .into_par_iter()
        .map(|t| {
            let range = postings_indptr[t] as usize..postings_indptr[t + 1] as usize;
            postings_docs[range.clone()]
                .chunks(POSTINGS_BLOCK)
                .zip(postings_tf[range].chunks(POSTINGS_BLOCK))
                .map(|(docs, tfs)| {
                    docs.iter()
                        .zip(tfs)
                        .map(|(&d, &tf)| {
                            term_score(term_idf[t], tf, doc_norm[d as usize], params.k1 + 1.0)
                        })
                        .fold(0.0f32, f32::max)
                })
                .collect()
        })
        .collect();
    let term_max_score: Vec<f32> = term_blocks
        .iter()
        .map(|b| b.iter().copied().fold(0.0f32, f32::max))
        .collect();
    let mut block_indptr = Vec::with_capacity(n_terms + 1);
    block_indptr.push(0i64);
    for b in &term_blocks {
        block_indptr.push(block_indptr.last().unwrap() + b.len() as i64);
    }
    let block_max_score: Vec<f32> = term_blocks.into_iter().flatten().collect();

    Ok(TextIndexData {
        vocab_bytes,
        vocab_offsets,
        postings_indptr,
        postings_docs,
        postings_tf,
        doc_len,
        doc_row,
        doc_norm,
        term_idf,
        term_max_score,
        block_indptr,
        block_max_score,
        avg_doc_len,
        params,
    })
}

/// `k1 * (1 - b + b * dl / avgdl)` per document.
pub fn doc_norms(doc_len: &[u32], avg_doc_len: f64, params: Bm25Params) -> Vec<f32> {
    let (k1, b) = (params.k1 as f64, params.b as f64);
    let avg = if avg_doc_len > 0.0 { avg_doc_len } else { 1.0 };
    doc_len
        .iter()
        .map(|&l| (k1 * (1.0 - b + b * l as f64 / avg)) as f32)
        .collect()
}

/// Lucene's BM25 idf: `ln(1 + (N - df + 0.5) / (df + 0.5))`, always > 0.
pub fn idf(n_docs: u64, df: u64) -> f32 {
    let (n, df) = (n_docs as f64, df as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
}

/// One term's BM25 contribution in one document. Every score in the index comes from this function,
/// so upper bounds and scores agree to the last bit.
#[inline]
fn term_score(idf: f32, tf: u16, norm: f32, k1_plus_1: f32) -> f32 {
    let tf = tf as f32;
    idf * (tf * k1_plus_1) / (tf + norm)
}

// ---------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------

/// The arrays of an index, borrowed (from a [`TextIndexData`] or from memory-mapped `.npy` files).
#[derive(Debug, Clone, Copy)]
pub struct IndexParts<'a> {
    pub vocab_bytes: &'a [u8],
    pub vocab_offsets: &'a [i64],
    pub postings_indptr: &'a [i64],
    pub postings_docs: &'a [i32],
    pub postings_tf: &'a [u16],
    pub doc_row: &'a [i32],
    pub doc_norm: &'a [f32],
    pub term_idf: &'a [f32],
    pub term_max_score: &'a [f32],
    pub block_indptr: &'a [i64],
    pub block_max_score: &'a [f32],
    pub k1: f32,
}

/// Top-N rows (ascending rank) and their scores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hits {
    pub rows: Vec<i64>,
    pub scores: Vec<f32>,
}

/// Slack on score upper bounds: covers float rounding of summing up to a few hundred f32 terms, so
/// pruning never drops a document the exhaustive search would keep.
const BOUND_SLACK: f64 = 1e-4;

impl<'a> IndexParts<'a> {
    pub fn n_docs(&self) -> usize {
        self.doc_norm.len()
    }

    pub fn n_terms(&self) -> usize {
        self.term_idf.len()
    }

    /// Checks the array lengths and offsets agree (O(n_terms)); run when the arrays are loaded.
    pub fn check(&self) -> Result<()> {
        let n_terms = self.term_idf.len();
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(invalid(format!(
                "k1 must be a finite number >= 0, got {}",
                self.k1
            )));
        }
        if self.term_max_score.len() != n_terms {
            return Err(invalid(format!(
                "term_max_score has {} entries but term_idf has {n_terms}",
                self.term_max_score.len()
            )));
        }
        check_offsets(
            "vocab_offsets",
            self.vocab_offsets,
            n_terms,
            self.vocab_bytes.len(),
        )?;
        check_offsets(
            "postings_indptr",
            self.postings_indptr,
            n_terms,
            self.postings_docs.len(),
        )?;
        if self.postings_tf.len() != self.postings_docs.len() {
            return Err(invalid(format!(
                "postings_tf has {} entries but postings_docs has {}",
                self.postings_tf.len(),
                self.postings_docs.len()
            )));
        }
        if self.doc_norm.len() > i32::MAX as usize {
            return Err(invalid("doc_norm has more than 2**31-1 documents"));
        }
        if self.doc_row.len() != self.doc_norm.len() {
            return Err(invalid(format!(
                "doc_row has {} entries but doc_norm has {}",
                self.doc_row.len(),
                self.doc_norm.len()
            )));
        }
        check_offsets(
            "block_indptr",
            self.block_indptr,
            n_terms,
            self.block_max_score.len(),
        )?;
        for t in 0..n_terms {
            let df = (self.postings_indptr[t + 1] - self.postings_indptr[t]) as usize;
            let n_blocks = (self.block_indptr[t + 1] - self.block_indptr[t]) as usize;
            if n_blocks != df.div_ceil(POSTINGS_BLOCK) {
                return Err(invalid(format!(
                    "block_indptr: term {t} has {n_blocks} blocks for {df} postings"
                )));
            }
        }
        for t in 1..n_terms {
            if self.term_bytes(t - 1) >= self.term_bytes(t) {
                return Err(invalid(format!(
                    "vocabulary is not strictly sorted at term {t}"
                )));
            }
        }
        Ok(())
    }

    /// Checks every posting (O(n_postings)): ids in range and strictly ascending within each
    /// term; and that `doc_row` is a permutation of the rows.
    pub fn verify_postings(&self) -> Result<()> {
        let n_docs = self.n_docs() as i64;
        let mut seen = vec![false; self.n_docs()];
        for &row in self.doc_row {
            if row < 0 || row as i64 >= n_docs || std::mem::replace(&mut seen[row as usize], true) {
                return Err(invalid(format!(
                    "doc_row: row {row} out of range or repeated"
                )));
            }
        }
        (0..self.n_terms()).into_par_iter().try_for_each(|t| {
            let docs = self.postings(t).0;
            let mut previous = -1i64;
            for &d in docs {
                let d = d as i64;
                if d <= previous || d >= n_docs {
                    return Err(invalid(format!(
                        "postings of term {t} ({:?}): row {d} out of order or outside 0..{n_docs}",
                        String::from_utf8_lossy(self.term_bytes(t))
                    )));
                }
                previous = d;
            }
            Ok(())
        })
    }

    fn term_bytes(&self, t: usize) -> &'a [u8] {
        &self.vocab_bytes[self.vocab_offsets[t] as usize..self.vocab_offsets[t + 1] as usize]
    }

    /// Id of `term` in the vocabulary (binary search), if present.
    pub fn term_id(&self, term: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.n_terms());
        let key = term.as_bytes();
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.term_bytes(mid).cmp(key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    fn postings(&self, t: usize) -> (&'a [i32], &'a [u16]) {
        let range = self.postings_indptr[t] as usize..self.postings_indptr[t + 1] as usize;
        (&self.postings_docs[range.clone()], &self.postings_tf[range])
    }

    /// Distinct vocabulary ids of `terms`, ascending (the order scores are summed in).
    pub fn query_term_ids(&self, terms: &[String]) -> Vec<usize> {
        let mut ids: Vec<usize> = terms.iter().filter_map(|t| self.term_id(t)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Checks and analyses `query`, then returns its top `top_n` rows with MaxScore pruning.
    pub fn search(&self, query: &str, top_n: usize) -> Result<Hits> {
        check_query(query)?;
        Ok(self.search_terms(&analyze_query(query), top_n, false))
    }

    /// Top `top_n` rows for already analysed `terms` (duplicates and unknown terms ignored), sorted
    /// by score descending then row ascending. `exhaustive` scores every matching document instead
    /// of pruning; both give the same result.
    pub fn search_terms(&self, terms: &[String], top_n: usize, exhaustive: bool) -> Hits {
        let ids = self.query_term_ids(terms);
        if ids.is_empty() || top_n == 0 {
            return Hits::default();
        }
        if exhaustive {
            self.exhaustive(&ids, top_n)
        } else {
            self.max_score(&ids, top_n)
        }
    }

    fn exhaustive(&self, ids: &[usize], top_n: usize) -> Hits {
        let k1p1 = self.k1 + 1.0;
        let mut acc = vec![0.0f32; self.n_docs()];
        let mut touched: Vec<u32> = Vec::new();
        for &t in ids {
            let (docs, tfs) = self.postings(t);
            let idf = self.term_idf[t];
            for (&d, &tf) in docs.iter().zip(tfs) {
                let score = &mut acc[d as usize];
                // Every contribution is > 0, so 0 means "not seen yet".
                if *score == 0.0 {
                    touched.push(d as u32);
                }
                *score += term_score(idf, tf, self.doc_norm[d as usize], k1p1);
            }
        }
        let mut all: Vec<Hit> = touched
            .into_iter()
            .map(|d| Hit {
                score: acc[d as usize],
                row: self.doc_row[d as usize] as u32,
            })
            .collect();
        if all.len() > top_n {
            all.select_nth_unstable_by(top_n - 1, |a, b| b.cmp(a));
            all.truncate(top_n);
        }
        all.sort_unstable_by(|a, b| b.cmp(a));
        hits_of(all)
    }

    fn max_score(&self, ids: &[usize], top_n: usize) -> Hits {
        let k1p1 = self.k1 + 1.0;
        let mut cursors: Vec<Cursor<'a>> = ids
            .iter()
            .enumerate()
            .map(|(slot, &t)| {
                let (docs, tfs) = self.postings(t);
                let blocks = self.block_indptr[t] as usize..self.block_indptr[t + 1] as usize;
                Cursor {
                    docs,
                    tfs,
                    blocks: &self.block_max_score[blocks],
                    pos: 0,
                    idf: self.term_idf[t],
                    bound: self.term_max_score[t] as f64,
                    slot,
                }
            })
            .collect();
        // Ascending upper bound: a prefix of "non-essential" terms cannot lift a document alone.
        cursors.sort_by(|a, b| a.bound.total_cmp(&b.bound).then(a.slot.cmp(&b.slot)));
        let mut prefix_bound = vec![0.0f64; cursors.len() + 1];
        for (i, c) in cursors.iter().enumerate() {
            prefix_bound[i + 1] = prefix_bound[i] + c.bound;
        }
        let bound = |x: f64| x * (1.0 + BOUND_SLACK);

        let mut heap: BinaryHeap<std::cmp::Reverse<Hit>> =
            BinaryHeap::with_capacity(top_n.min(self.n_docs()) + 1);
        let mut threshold: Option<f32> = None; // lowest score in a full heap
        let mut first_essential = 0usize;
        let mut found: Vec<(usize, f32)> = Vec::with_capacity(ids.len());

        loop {
            // One essential list left: pass over its postings that cannot beat the threshold even
            // with every other term, in a tight loop (the check below would prune them one by one).
            if let Some(theta) = threshold {
                if first_essential + 1 == cursors.len() {
                    // Skip while idf * tf * (k1 + 1) / (tf + norm) <= limit, without dividing.
                    let limit = theta as f64 / (1.0 + BOUND_SLACK) - prefix_bound[first_essential];
                    let c = &mut cursors[first_essential];
                    let weight = c.idf as f64 * k1p1 as f64;
                    while let Some(&d) = c.docs.get(c.pos) {
                        if c.block_max() as f64 <= limit {
                            c.skip_block();
                            continue;
                        }
                        let tf = c.tfs[c.pos] as f64;
                        if weight * tf > limit * (tf + self.doc_norm[d as usize] as f64) {
                            break;
                        }
                        c.pos += 1;
                    }
                }
            }
            let doc = cursors[first_essential..]
                .iter()
                .map(Cursor::doc)
                .min()
                .unwrap_or(END);
            if doc == END {
                break;
            }
            // Several essential lists: skip a window where their block maxima cannot reach the
            // threshold. Every essential posting in [doc, last] lies in its cursor's current block.
            if let Some(theta) = threshold {
                if first_essential + 1 < cursors.len() {
                    let mut window = prefix_bound[first_essential];
                    let mut last = END;
                    for c in &cursors[first_essential..] {
                        if c.doc() != END {
                            window += c.block_max() as f64;
                            last = last.min(c.block_last());
                        }
                    }
                    if bound(window) <= theta as f64 {
                        for c in &mut cursors[first_essential..] {
                            c.advance_to(last + 1);
                        }
                        continue;
                    }
                }
            }
            let norm = self.doc_norm[doc as usize];
            found.clear();
            let mut partial = 0.0f64;
            for c in &mut cursors[first_essential..] {
                if c.doc() == doc {
                    let v = term_score(c.idf, c.tfs[c.pos], norm, k1p1);
                    found.push((c.slot, v));
                    partial += v as f64;
                    c.pos += 1;
                }
            }
            let mut pruned = false;
            for i in (0..first_essential).rev() {
                if let Some(theta) = threshold {
                    if bound(partial + prefix_bound[i + 1]) <= theta as f64 {
                        pruned = true;
                        break;
                    }
                }
                let c = &mut cursors[i];
                c.advance_to(doc);
                if c.doc() == doc {
                    let v = term_score(c.idf, c.tfs[c.pos], norm, k1p1);
                    found.push((c.slot, v));
                    partial += v as f64;
                }
            }
            if pruned {
                continue;
            }
            // Summed in query-term order, exactly as the exhaustive search sums them.
            found.sort_unstable_by_key(|&(slot, _)| slot);
            let score = found.iter().fold(0.0f32, |sum, &(_, v)| sum + v);
            let hit = Hit {
                score,
                row: self.doc_row[doc as usize] as u32,
            };
            match threshold {
                Some(_) => {
                    // Ties on score go to the lower row, whatever order documents come in.
                    if hit <= heap.peek().expect("full heap").0 {
                        continue;
                    }
                    heap.pop();
                    heap.push(std::cmp::Reverse(hit));
                }
                None => {
                    heap.push(std::cmp::Reverse(hit));
                    if heap.len() < top_n {
                        continue;
                    }
                }
            }
            let theta = heap.peek().expect("full heap").0.score;
            threshold = Some(theta);
            while first_essential < cursors.len()
                && bound(prefix_bound[first_essential + 1]) <= theta as f64
            {
                first_essential += 1;
            }
            if first_essential == cursors.len() {
                break; // no document can beat the threshold any more
            }
        }
        let mut kept: Vec<Hit> = heap.into_iter().map(|r| r.0).collect();
        kept.sort_unstable_by(|a, b| b.cmp(a));
        hits_of(kept)
    }
}

fn check_offsets(name: &str, offsets: &[i64], n_terms: usize, total: usize) -> Result<()> {
    if offsets.len() != n_terms + 1 {
        return Err(invalid(format!(
            "{name} has {} entries, expected {}",
            offsets.len(),
            n_terms + 1
        )));
    }
    if offsets[0] != 0 || offsets[n_terms] != total as i64 {
        return Err(invalid(format!("{name} must run from 0 to {total}")));
    }
    if offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(invalid(format!("{name} is not non-decreasing")));
    }
    Ok(())
}

const END: i32 = i32::MAX;

struct Cursor<'a> {
    docs: &'a [i32],
    tfs: &'a [u16],
    blocks: &'a [f32],
    pos: usize,
    idf: f32,
    bound: f64,
    slot: usize,
}

impl Cursor<'_> {
    #[inline]
    fn doc(&self) -> i32 {
        self.docs.get(self.pos).copied().unwrap_or(END)
    }

    /// Largest contribution in the block holding the current posting (not at the end).
    #[inline]
    fn block_max(&self) -> f32 {
        self.blocks[self.pos / POSTINGS_BLOCK]
    }

    /// Last document of the block holding the current posting (not at the end).
    #[inline]
    fn block_last(&self) -> i32 {
        let end = ((self.pos / POSTINGS_BLOCK + 1) * POSTINGS_BLOCK).min(self.docs.len());
        self.docs[end - 1]
    }

    /// Moves to the first posting of the next block.
    #[inline]
    fn skip_block(&mut self) {
        self.pos = ((self.pos / POSTINGS_BLOCK + 1) * POSTINGS_BLOCK).min(self.docs.len());
    }

    /// Moves to the first posting with id >= `target` (galloping, then binary search).
    fn advance_to(&mut self, target: i32) {
        // Targets are usually a few postings ahead: look there before galloping.
        let near = (self.pos + 8).min(self.docs.len());
        while self.pos < near {
            if self.docs[self.pos] >= target {
                return;
            }
            self.pos += 1;
        }
        if self.pos == self.docs.len() {
            return;
        }
        let mut step = 1usize;
        let mut lo = self.pos;
        let mut hi = self.pos + 1;
        while hi < self.docs.len() && self.docs[hi] < target {
            lo = hi;
            step *= 2;
            hi += step;
        }
        let hi = hi.min(self.docs.len());
        self.pos = lo + self.docs[lo..hi].partition_point(|&d| d < target);
    }
}

/// A scored row; `Ord` puts the better hit greater (higher score, then lower row).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hit {
    score: f32,
    row: u32,
}

impl Eq for Hit {}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.row.cmp(&self.row))
    }
}

fn hits_of(sorted: Vec<Hit>) -> Hits {
    Hits {
        rows: sorted.iter().map(|h| h.row as i64).collect(),
        scores: sorted.iter().map(|h| h.score).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn latin_words_are_lowercased_and_split_on_punctuation() {
        assert_eq!(
            analyze("Nike Air-Max 90, RED!"),
            s(&["nike", "air", "max", "90", "red"])
        );
    }

    #[test]
    fn fullwidth_latin_is_folded_by_nfkc() {
        assert_eq!(
            analyze("ＮＩＫＥ ｉＰｈｏｎｅ１５"),
            s(&["nike", "iphone15"])
        );
    }

    #[test]
    fn cjk_runs_become_overlapping_bigrams() {
        assert_eq!(analyze("连衣裙"), s(&["连衣", "衣裙"]));
        assert_eq!(
            analyze("夏季连衣裙 red"),
            s(&["夏季", "季连", "连衣", "衣裙", "red"])
        );
    }

    #[test]
    fn a_lone_cjk_character_is_a_unigram() {
        assert_eq!(analyze("裙 dress"), s(&["裙", "dress"]));
    }

    #[test]
    fn scripts_switch_without_spaces() {
        assert_eq!(analyze("iPhone15手机壳"), s(&["iphone15", "手机", "机壳"]));
    }

    #[test]
    fn kana_and_hangul_are_cjk_and_halfwidth_katakana_is_normalised() {
        assert_eq!(analyze("ｶﾞﾝ"), s(&["ガン"]));
        assert_eq!(analyze("원피스"), s(&["원피", "피스"]));
        assert_eq!(analyze("ナイキ・エア"), s(&["ナイ", "イキ", "エア"]));
    }

    #[test]
    fn documents_get_brand_and_category_tokens() {
        let tokens = analyze_document("Red Dress", " Under  Armour ", "服饰>女装 > 连衣裙");
        assert_eq!(
            tokens,
            s(&[
                "red",
                "dress",
                "under",
                "armour",
                "brand:under armour",
                "服饰",
                "cat:服饰",
                "女装",
                "cat:女装",
                "连衣",
                "衣裙",
                "cat:连衣裙"
            ])
        );
    }

    #[test]
    fn queries_keep_field_tokens_whole() {
        assert_eq!(
            analyze_query("ＢＲＡＮＤ:Nike 连衣裙"),
            s(&["brand:nike", "连衣", "衣裙"])
        );
        assert_eq!(analyze_query("brand: nike"), s(&["brand", "nike"]));
    }

    #[test]
    fn bad_queries_are_rejected_naming_the_field() {
        for q in ["", "   \t\n"] {
            let err = check_query(q).unwrap_err().to_string();
            assert!(err.contains("query"), "{err}");
        }
        let long = "a".repeat(MAX_QUERY_CHARS + 1);
        assert!(check_query(&long)
            .unwrap_err()
            .to_string()
            .contains("query"));
        assert!(check_query(&"连".repeat(MAX_QUERY_CHARS)).is_ok());
    }

    fn corpus() -> Vec<String> {
        s(&[
            "red summer dress",
            "夏季 红色 连衣裙",
            "red running shoes nike",
            "连衣裙 red dress long",
            "blue dress",
            "dress dress dress",
            "手机壳 iphone",
        ])
    }

    /// Straightforward BM25 over analysed tokens, in f64.
    fn reference(docs: &[Vec<String>], query: &[String], k1: f64, b: f64) -> Vec<f64> {
        let n = docs.len() as f64;
        let avg = docs.iter().map(|d| d.len() as f64).sum::<f64>() / n;
        let mut q = query.to_vec();
        q.sort();
        q.dedup();
        docs.iter()
            .map(|d| {
                q.iter()
                    .map(|t| {
                        let df = docs.iter().filter(|x| x.contains(t)).count() as f64;
                        let tf = d.iter().filter(|x| *x == t).count() as f64;
                        if tf == 0.0 {
                            return 0.0;
                        }
                        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                        idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * d.len() as f64 / avg))
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn scores_match_a_reference_bm25() {
        let titles = corpus();
        let params = Bm25Params { k1: 1.5, b: 0.6 };
        let index = build(&titles, None, None, params).unwrap();
        let parts = index.parts();
        parts.check().unwrap();
        parts.verify_postings().unwrap();
        let docs: Vec<Vec<String>> = titles.iter().map(|t| analyze(t)).collect();
        let query = analyze_query("连衣裙 red dress");
        let expected = reference(&docs, &query, 1.5, 0.6);
        let hits = parts.search_terms(&query, 10, false);
        assert_eq!(
            hits.rows.len(),
            expected.iter().filter(|&&x| x > 0.0).count()
        );
        for (&row, &score) in hits.rows.iter().zip(&hits.scores) {
            let want = expected[row as usize];
            assert!(
                (score as f64 - want).abs() < 1e-5 * want.max(1.0),
                "row {row}: {score} vs {want}"
            );
        }
        assert!(hits.scores.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn pruned_search_equals_exhaustive_search() {
        // Deterministic pseudo-random corpus from a small vocabulary, many top-N sizes.
        let words = [
            "red",
            "dress",
            "shoe",
            "blue",
            "连衣裙",
            "手机",
            "nike",
            "long",
            "a",
            "b",
        ];
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let titles: Vec<String> = (0..3000)
            .map(|_| {
                (0..1 + next() % 6)
                    .map(|_| words[next() % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let index = build(&titles, None, None, Bm25Params::default()).unwrap();
        let parts = index.parts();
        for q in 0..60 {
            let query: Vec<String> = (0..1 + q % 5)
                .flat_map(|_| analyze(words[next() % words.len()]))
                .collect();
            for top_n in [1, 3, 10, 50, 1000] {
                let pruned = parts.search_terms(&query, top_n, false);
                let exhaustive = parts.search_terms(&query, top_n, true);
                assert_eq!(pruned, exhaustive, "query {query:?} top {top_n}");
            }
        }
    }

    #[test]
    fn postings_are_ascending_and_vocabulary_sorted() {
        let index = build(&corpus(), None, None, Bm25Params::default()).unwrap();
        let parts = index.parts();
        assert!(parts.check().is_ok());
        assert!(parts.verify_postings().is_ok());
        let dress = parts.term_id("dress").unwrap();
        let mut rows: Vec<i32> = parts
            .postings(dress)
            .0
            .iter()
            .map(|&d| parts.doc_row[d as usize])
            .collect();
        rows.sort_unstable();
        assert_eq!(rows, vec![0, 3, 4, 5]);
        assert_eq!(parts.term_id("missing"), None);
    }

    #[test]
    fn build_rejects_bad_input() {
        assert!(build(&[], None, None, Bm25Params::default()).is_err());
        assert!(build(&corpus(), Some(&s(&["x"])), None, Bm25Params::default()).is_err());
        assert!(build(&corpus(), None, None, Bm25Params { k1: 1.2, b: 1.5 }).is_err());
    }

    #[test]
    fn unknown_terms_find_nothing() {
        let index = build(&corpus(), None, None, Bm25Params::default()).unwrap();
        assert_eq!(index.parts().search("zzz", 10).unwrap(), Hits::default());
        assert!(index.parts().search("  ", 10).is_err());
    }
}
