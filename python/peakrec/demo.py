"""`make demo`: the most complete end-to-end path available."""

from __future__ import annotations

import numpy as np

from peakrec import FeatureHasher

SHOPPERS = [
    {"region": "CN-ZJ", "device": "ios", "segment": "brand-loyalist", "query": "连衣裙"},
    {"region": "BR", "device": "android", "segment": "cold-start"},
    {"region": "CN-GS", "device": "android", "segment": "small-town-active-youth", "query": "9.9包邮"},
]


def main() -> None:
    hasher = FeatureHasher(n_features=2**18, input_type="dict")
    matrix = hasher.transform(SHOPPERS)
    table = np.random.default_rng(0).standard_normal((2**18, 8)).astype(np.float32)
    pooled = hasher.pool(SHOPPERS, table, mode="mean")
    for shopper, row, vector in zip(SHOPPERS, matrix, pooled, strict=True):
        print(shopper)
        print("  hashed buckets:", dict(zip(row.indices.tolist(), row.data.tolist(), strict=True)))
        print("  pooled vector :", np.round(vector, 3).tolist())


if __name__ == "__main__":
    main()
