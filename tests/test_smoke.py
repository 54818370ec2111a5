import peakrec


def test_package_exposes_feature_hasher():
    assert peakrec.FeatureHasher(8).n_features == 8
