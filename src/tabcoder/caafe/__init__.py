"""CAAFE: the model engineers features one at a time; the sandbox runs them; cross-validation decides.

    from tabcoder.caafe import run_caafe, solution_guidance, include_feature_code, CaafeTransformer
    result = run_caafe(task, split.fit, backend=backend, sandbox=sandbox, n_features=5, seed=0)
    result.feature_code          # one module defining add_features(df) -> df
    result.table()               # every proposal: code, reason, CV score without / with, kept, error

Modules, along the data path: `code` (blocks and the composed function), `messages` (prompts),
`execution` + `_child` (the sandbox run), `cv` (repeated K-fold with a fast base model), `engine` (the
loop), `result` (records and files), `guidance` (the solution prompt variants), `transformer`
(scikit-learn). See docs/caafe.md.
"""

from tabcoder.caafe.code import FUNCTION_NAME, FeatureBlock
from tabcoder.caafe.engine import CaafeSettings, run_caafe
from tabcoder.caafe.execution import FeatureCodeError, FeatureRun, apply_in_sandbox, transform_table
from tabcoder.caafe.guidance import VARIANTS, include_feature_code, solution_guidance
from tabcoder.caafe.result import CaafeResult, Proposal, read_result, write_outputs
from tabcoder.caafe.transformer import CaafeTransformer

__all__ = [
    "FUNCTION_NAME",
    "VARIANTS",
    "CaafeResult",
    "CaafeSettings",
    "CaafeTransformer",
    "FeatureBlock",
    "FeatureCodeError",
    "FeatureRun",
    "Proposal",
    "apply_in_sandbox",
    "include_feature_code",
    "read_result",
    "run_caafe",
    "solution_guidance",
    "transform_table",
    "write_outputs",
]
