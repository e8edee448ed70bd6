"""CaafeTransformer: scikit-learn conventions, a Pipeline under cross_val_score, and the sandbox mode."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from tabcoder.caafe import CaafeTransformer, FeatureCodeError
from tabcoder.caafe.code import compose, parse_reply

from caafe_helpers import RATIO, make_task

FEATURES = compose([parse_reply(RATIO)], title="accepted ratio feature")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return make_task(tmp_path_factory.mktemp("transformer"), "binary", rows=300)


def test_fit_transform_and_learned_state(task):
    X = task.train[task.feature_columns]
    transformer = CaafeTransformer(code=FEATURES)
    assert not [k for k in vars(transformer) if k.endswith("_")]  # __init__ stores parameters only
    out = transformer.fit(X).transform(task.test[task.feature_columns])
    assert list(transformer.feature_names_in_) == ["a", "b", "c"] and transformer.n_features_in_ == 3
    assert list(transformer.get_feature_names_out()) == ["a", "b", "c", "a_over_b"]
    assert list(out.columns) == ["a", "b", "c", "a_over_b"] and out.index.equals(task.test.index)
    fitted = pickle.loads(pickle.dumps(transformer))  # a fitted transformer can be saved
    assert fitted.transform(X).equals(transformer.transform(X))
    assert clone(transformer).get_params() == {"code": FEATURES, "isolation": "exec", "timeout": 60.0}


def test_in_a_pipeline_with_cross_val_score(task):
    X, y = task.train[task.feature_columns], task.train["y"]
    plain = make_pipeline(HistGradientBoostingClassifier(max_iter=50, random_state=0))
    engineered = make_pipeline(CaafeTransformer(code=FEATURES),
                               HistGradientBoostingClassifier(max_iter=50, random_state=0))
    base = cross_val_score(plain, X, y, cv=3).mean()
    better = cross_val_score(engineered, X, y, cv=3).mean()
    assert better > base + 0.01


def test_a_bare_block_is_accepted_as_code(task):
    out = CaafeTransformer(code="df['s'] = df['a'] + df['b']").fit_transform(task.train[task.feature_columns])
    assert "s" in out.columns and list(out.columns)[:3] == ["a", "b", "c"]


def test_bad_input_is_explained(task):
    X = task.train[task.feature_columns]
    with pytest.raises(ValueError, match="needs a pandas DataFrame"):
        CaafeTransformer(code=FEATURES).fit(X.to_numpy())
    fitted = CaafeTransformer(code=FEATURES).fit(X)
    with pytest.raises(ValueError, match="lacks the column"):
        fitted.transform(X.drop(columns=["b"]))
    with pytest.raises(ValueError, match="isolation"):
        CaafeTransformer(code=FEATURES, isolation="maybe").fit(X)
    data_dependent = "df['z'] = 1.0 if len(df) > 100 else np.nan\nif len(df) > 100:\n    df['only_big'] = 1"
    small = CaafeTransformer(code=data_dependent).fit(X)
    with pytest.raises(FeatureCodeError, match="only_big"):
        small.transform(X.head(5))
    with pytest.raises(FeatureCodeError, match="in their order"):
        CaafeTransformer(code="df = df.sort_values('a')").fit(X)


def test_sandbox_isolation_gives_the_same_result_and_contains_bad_code(task, tmp_path):
    X = task.train[task.feature_columns]
    in_process = CaafeTransformer(code=FEATURES).fit_transform(X)
    sandboxed = CaafeTransformer(code=FEATURES, isolation="sandbox").fit_transform(X)
    pd.testing.assert_frame_equal(in_process, sandboxed)
    marker = tmp_path / "written"
    hostile = f"open('{marker}', 'w').write('x')\ndf['x'] = 1"
    with pytest.raises(FeatureCodeError, match="PermissionError"):
        CaafeTransformer(code=hostile, isolation="sandbox").fit(X)
    assert not marker.exists()
    assert np.isfinite(in_process["a_over_b"]).all()
