"""Cold start: a hashed-feature table that maps a shopper's context features to an embedding.

A user's features are hashed (``peakrec.FeatureHasher``, ``input_type="string"``) and the rows of
``table`` for those buckets are mean-pooled (``FeatureHasher.pool(rows, table, mode="mean")``). The
table is fitted by ridge regression from the features of users who have embeddings to those
embeddings, so pooling a cold shopper's features predicts the embedding a warm twin would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from peakrec.features import FeatureHasher

DENSE_SOLVE_MAX = 6000  # active buckets up to which the normal equations are solved densely


def user_features(
    region: str, segments: list[str], lifecycle: str, memberships: list[str], features: list[str]
) -> list[str]:
    """The ``key=value`` strings hashed for one user, in a fixed order, without repeats.

    The serving side builds the same strings from a request: ``region=``, one ``segment=`` per
    segment, ``lifecycle=``, one ``member=`` per brand membership, then the free context features.
    """
    out = [f"region={region}"]
    out += [f"segment={s}" for s in segments]
    out.append(f"lifecycle={lifecycle}")
    out += [f"member={b}" for b in memberships]
    out += features
    return list(dict.fromkeys(out))


@dataclass
class ColdstartFit:
    table: np.ndarray  # float32 [n_features, d]
    stats: dict[str, Any]


def hasher_for(n_features: int) -> FeatureHasher:
    return FeatureHasher(n_features=n_features, input_type="string", alternate_sign=True)


def mean_pooling_matrix(rows: list[list[str]], n_features: int) -> sp.csr_matrix:
    """Hashed features with each row divided by its count of non-zero buckets, so that
    ``matrix @ table`` equals ``FeatureHasher.pool(rows, table, mode="mean")``. float64 [n, B]."""
    matrix = hasher_for(n_features).transform(rows).astype(np.float64)
    matrix.eliminate_zeros()
    counts = np.diff(matrix.indptr)
    scale = np.divide(1.0, counts, out=np.zeros(len(counts)), where=counts > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


def fit_table(
    rows: list[list[str]], targets: np.ndarray, n_features: int, alpha: float = 1.0, holdout: float = 0.1
) -> ColdstartFit:
    """Ridge fit of the table: minimises ``|X T - Y|^2 + alpha |T|^2`` over the buckets in use.

    ``rows``: feature strings of the users with embeddings; ``targets``: float32 [n, d], their
    embeddings. A ``holdout`` share of users is first left out to measure the cosine between
    predicted and true embeddings (written to the manifest), then the table is refitted on all.
    """
    n, d = targets.shape
    table = np.zeros((n_features, d), dtype=np.float32)
    if n == 0:
        return ColdstartFit(table, {"fit_users": 0})
    x = mean_pooling_matrix(rows, n_features)
    y = np.asarray(targets, dtype=np.float64)
    stats: dict[str, Any] = {"fit_users": int(n)}
    if holdout > 0 and n >= 50:
        test = np.random.default_rng(0).random(n) < holdout
        t_part = _solve(x[~test], y[~test], alpha)
        pred = (x[test] @ t_part).astype(np.float64)
        stats["heldout_users"] = int(test.sum())
        stats["heldout_cosine"] = round(_mean_cosine(pred, y[test]), 4)
        stats["mean_vector_cosine"] = round(
            _mean_cosine(np.broadcast_to(y[~test].mean(0), pred.shape), y[test]), 4
        )
    t_all = _solve(x, y, alpha)
    table[:] = t_all
    stats["active_buckets"] = int(np.count_nonzero(np.any(t_all != 0, axis=1)))
    return ColdstartFit(table, stats)


def _solve(x: sp.csr_matrix, y: np.ndarray, alpha: float) -> np.ndarray:
    """Dense [B, d] solution; buckets no training row uses stay zero."""
    cols = np.unique(x.indices)
    out = np.zeros((x.shape[1], y.shape[1]), dtype=np.float64)
    if len(cols) == 0:
        return out
    a = x.tocsc()[:, cols]
    gram = (a.T @ a).tocsc() + alpha * sp.identity(len(cols), format="csc")
    rhs = np.asarray(a.T @ y)
    if len(cols) <= DENSE_SOLVE_MAX:
        out[cols] = scipy.linalg.solve(gram.toarray(), rhs, assume_a="pos")
    else:
        out[cols] = scipy.sparse.linalg.spsolve(gram, rhs).reshape(len(cols), -1)
    return out


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb > 0)
    if not ok.any():
        return 0.0
    return float(np.mean(np.sum(a[ok] * b[ok], axis=1) / (na[ok] * nb[ok])))
