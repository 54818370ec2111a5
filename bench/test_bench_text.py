"""BM25 query latency: the Rust index (MaxScore) against a pure-Python BM25 over the same corpus.

The corpus is synthetic and bilingual: Zipf-distributed English-like words and Chinese words, a
brand and a category path per item. Size: ``PEAKREC_BENCH_TITLES`` (default 1,000,000). Both
searchers use the same analyzer tokens; the top-10 lists are checked equal before timing.
"""

from __future__ import annotations

import heapq
import math
import os
import statistics
import time
from collections import Counter

import numpy as np
import pytest
from peakrec.retrieval.text import TextIndex, analyze, analyze_documents

N_TITLES = int(os.environ.get("PEAKREC_BENCH_TITLES", "1000000"))
N_QUERIES = 100
TOP_N = 10


def zipf_choice(rng, n_values, size, exponent=1.05):
    p = 1.0 / np.arange(1, n_values + 1) ** exponent
    return rng.choice(n_values, size=size, p=p / p.sum())


def synthetic_catalogue(n, seed=0):
    """``(titles, brands, categories, queries)``: lists of str, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    syllables = np.array([c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ay", "ee")])
    english = np.unique(["".join(rng.choice(syllables, size=rng.integers(2, 4))) for _ in range(6000)])
    rng.shuffle(english)
    han = np.array([chr(0x4E00 + i) for i in rng.choice(3000, size=3000, replace=False)])
    chinese = np.unique(["".join(rng.choice(han, size=rng.integers(2, 4))) for _ in range(5000)])
    rng.shuffle(chinese)
    brands = np.array([f"Brand{i}" for i in range(500)])
    categories = np.array([f"类目{i // 20}>子类{i % 20}" for i in range(400)])

    en = english[zipf_choice(rng, len(english), (n, 6))]
    zh = chinese[zipf_choice(rng, len(chinese), (n, 3))]
    n_en = rng.integers(2, 7, size=n)
    n_zh = rng.integers(1, 4, size=n)
    titles = [" ".join([*e[:ne], *z[:nz]]) for e, z, ne, nz in zip(en, zh, n_en, n_zh, strict=True)]
    item_brands = brands[zipf_choice(rng, len(brands), n)].tolist()
    item_categories = categories[rng.integers(0, len(categories), n)].tolist()

    # Queries: one Chinese and one or two English words of a random item, like a shopper's query.
    rows = rng.integers(0, n, N_QUERIES)
    queries = [f"{zh[r][0]} {' '.join(en[r][: 1 + q % 2])}" for q, r in enumerate(rows)]
    return titles, item_brands, item_categories, queries


class PythonBM25:
    """A plain-Python inverted index and term-at-a-time BM25 (the usual pure-Python approach)."""

    def __init__(self, documents, k1=1.2, b=0.75):
        self.postings = {}
        lengths = []
        for row, tokens in enumerate(documents):
            lengths.append(len(tokens))
            for term, tf in Counter(tokens).items():
                entry = self.postings.get(term)
                if entry is None:
                    entry = self.postings[term] = ([], [])
                entry[0].append(row)
                entry[1].append(tf)
        n = len(lengths)
        avg = sum(lengths) / n
        self.k1 = k1
        self.norm = [k1 * (1 - b + b * dl / avg) for dl in lengths]
        self.idf = {
            t: math.log(1 + (n - len(d) + 0.5) / (len(d) + 0.5)) for t, (d, _) in self.postings.items()
        }

    def search(self, query, top_n):
        scores = {}
        k1p1 = self.k1 + 1
        norm = self.norm
        for term in set(analyze(query)):
            entry = self.postings.get(term)
            if entry is None:
                continue
            idf = self.idf[term]
            for row, tf in zip(entry[0], entry[1], strict=True):
                scores[row] = scores.get(row, 0.0) + idf * tf * k1p1 / (tf + norm[row])
        best = heapq.nlargest(top_n, scores.items(), key=lambda kv: (kv[1], -kv[0]))
        return np.array([r for r, _ in best], dtype=np.int64), np.array([s for _, s in best])


@pytest.fixture(scope="session")
def corpus():
    titles, brands, categories, queries = synthetic_catalogue(N_TITLES)
    start = time.perf_counter()
    index = TextIndex.build(titles, brands, categories)
    build_seconds = time.perf_counter() - start
    documents = analyze_documents(titles, brands, categories)
    del titles, brands, categories
    python_index = PythonBM25(documents)
    del documents
    return index, python_index, queries, build_seconds


def same_top(rows, scores, ref_rows, ref_scores):
    """Equal top lists, allowing rows to swap only where scores tie (f32 vs f64 summation)."""
    if len(rows) != len(ref_rows) or not np.allclose(scores, ref_scores, rtol=1e-5):
        return False
    cut = ref_scores[-1] * (1 + 1e-5) if len(ref_scores) else 0
    return set(rows[scores > cut].tolist()) == set(ref_rows[ref_scores > cut].tolist())


def median_seconds(fn, rounds, clock=time.perf_counter):
    times = []
    for _ in range(rounds):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def test_bm25_query_latency_rust_vs_python(benchmark, corpus):
    index, python_index, queries, build_seconds = corpus
    for query in queries:
        rows, scores = index.search(query, TOP_N)
        assert same_top(rows, scores, *python_index.search(query, TOP_N)), query
        exhaustive = index.search(query, TOP_N, exhaustive=True)
        np.testing.assert_array_equal(rows, exhaustive[0])

    def rust_all():
        for query in queries:
            index.search(query, TOP_N)

    def rust_exhaustive_all():
        for query in queries:
            index.search(query, TOP_N, exhaustive=True)

    def python_all():
        for query in queries:
            python_index.search(query, TOP_N)

    python_s = median_seconds(python_all, rounds=3) / len(queries)
    exhaustive_s = median_seconds(rust_exhaustive_all, rounds=5) / len(queries)
    benchmark.pedantic(rust_all, rounds=20, warmup_rounds=1)
    rust_s = benchmark.stats.stats.median / len(queries)
    # CPU time too: on a shared machine wall time includes waiting for a core.
    cpu = time.process_time
    rust_cpu_s = median_seconds(rust_all, rounds=10, clock=cpu) / len(queries)
    python_cpu_s = median_seconds(python_all, rounds=3, clock=cpu) / len(queries)
    info = {
        "titles": N_TITLES,
        "queries_per_round": len(queries),
        "terms": index.n_terms,
        "postings": int(len(index.arrays["postings_docs"])),
        "build_seconds": round(build_seconds, 2),
        "rust_maxscore_us_per_query": round(rust_s * 1e6, 1),
        "rust_exhaustive_us_per_query": round(exhaustive_s * 1e6, 1),
        "python_us_per_query": round(python_s * 1e6, 1),
        "speedup_vs_python": round(python_s / rust_s, 1),
        "speedup_vs_rust_exhaustive": round(exhaustive_s / rust_s, 2),
        "rust_maxscore_cpu_us_per_query": round(rust_cpu_s * 1e6, 1),
        "python_cpu_us_per_query": round(python_cpu_s * 1e6, 1),
        "cpu_speedup_vs_python": round(python_cpu_s / rust_cpu_s, 1),
    }
    benchmark.extra_info.update(info)
    print("\n" + "\n".join(f"  {k}: {v}" for k, v in info.items()))
