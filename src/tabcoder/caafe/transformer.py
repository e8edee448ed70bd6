"""`CaafeTransformer`: accepted CAAFE feature code as a scikit-learn transformer for your own Pipeline.

How it executes the code (`isolation`):
* "exec" (default): the code is compiled and run in this process. This is what a Pipeline needs (speed,
  `cross_val_score`, pickling, joblib workers), and it is meant for code that was already vetted: CAAFE ran
  it in the sandbox and cross-validation accepted it, and it is a short, readable function
  (`features.py`) that you can review before use. In-process code can do anything your Python can:
  never pass it code you have not read.
* "sandbox": every `fit` / `transform` runs the code in tabcoder's sandbox (a child process without
  network, writes confined to a temporary workspace, a timeout), and reads the result back as Parquet. About
  half a second per call: for code you have not reviewed.

Learned state (set by `fit`): `feature_names_in_`, `n_features_in_` and `feature_names_out_` (the
columns the code produced on the fit data; `transform` returns exactly these, in this order).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from tabcoder.caafe.code import FUNCTION_NAME, FeatureBlock, compose, defines_function
from tabcoder.caafe.execution import FeatureCodeError, apply_in_sandbox

ISOLATIONS = ("exec", "sandbox")


class CaafeTransformer(TransformerMixin, BaseEstimator):
    """Applies CAAFE feature code (`CaafeResult.feature_code`, a `features.py`, or a bare block of pandas
    statements on `df`) to a DataFrame of feature columns."""

    def __init__(self, code: str = "", *, isolation: str = "exec", timeout: float = 60.0) -> None:
        self.code = code
        self.isolation = isolation
        self.timeout = timeout

    def fit(self, X, y=None) -> CaafeTransformer:
        self._fit(X)
        return self

    def fit_transform(self, X, y=None, **fit_params) -> pd.DataFrame:
        return self._fit(X)

    def transform(self, X) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_out_")
        frame = _as_frame(X)
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise ValueError(f"X lacks the column(s) {', '.join(map(str, missing[:10]))} that it had in fit; "
                             "pass the same feature columns to fit and transform")
        out = self._apply(frame[list(self.feature_names_in_)])
        absent = [c for c in self.feature_names_out_ if c not in out.columns]
        if absent:
            raise FeatureCodeError(f"the feature code made the column(s) {', '.join(absent[:10])} in fit but not "
                                   "now; feature code must make the same columns for any rows")
        return out[list(self.feature_names_out_)]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

    # -- helpers -----------------------------------------------------------------------------------------
    def _fit(self, X) -> pd.DataFrame:
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {self.isolation!r}")
        frame = _as_frame(X)
        out = self._apply(frame)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.feature_names_out_ = np.asarray(out.columns, dtype=object)
        return out

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        module = module_code(self.code)
        if self.isolation == "sandbox":
            out = _apply_in_sandbox(module, frame, timeout=self.timeout)
        else:
            out = load_function(module)(frame.copy())
        if not isinstance(out, pd.DataFrame) or not out.index.equals(frame.index):
            raise FeatureCodeError(f"{FUNCTION_NAME} must return a DataFrame with the rows of its input, in their "
                                   f"order and with their index; got a {type(out).__name__} that differs")
        return out


def module_code(code: str) -> str:
    """A module defining `add_features`: `code` itself when it defines it, else `code` as a block."""
    if defines_function(code):
        return code
    return compose([FeatureBlock(code=code, reason="")] if code.strip() else [])


def load_function(module: str):
    """Execute a feature module in a fresh namespace in THIS process and return its `add_features`."""
    namespace: dict = {"__name__": "tabcoder_caafe_features"}
    exec(compile(module, "<caafe features>", "exec"), namespace)  # noqa: S102 - vetted code, see module docstring
    function = namespace.get(FUNCTION_NAME)
    if not callable(function):
        raise FeatureCodeError(f"the feature code defines no function {FUNCTION_NAME}(df)")
    return function


def _apply_in_sandbox(module: str, frame: pd.DataFrame, *, timeout: float) -> pd.DataFrame:
    from tabcoder.sandbox import LocalSandbox

    with tempfile.TemporaryDirectory(prefix="tabcoder-caafe-transform-") as folder:
        run = apply_in_sandbox(module, frame, sandbox=LocalSandbox(), workspace=Path(folder) / "ws",
                               timeout=timeout)
    if not run.ok:
        raise FeatureCodeError(f"the feature code failed in the sandbox: {run.error}")
    return run.frame


def _as_frame(X) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"CaafeTransformer needs a pandas DataFrame (the feature code uses column names), got "
                         f"{type(X).__name__}; pass e.g. train[feature_columns]")
    return X
