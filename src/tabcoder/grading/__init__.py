"""The harness side of evaluation: hold-out splits, sample submissions, and the checking and grading of
a submission against labels that the generated code never sees.

The data path, one module a step:

- `splits`: `make_split` / `make_folds` cut a task's labelled rows into what the code gets (fit rows with
  labels, validation rows without) and what the harness keeps (the validation labels), with a sample
  submission for the validation ids (`make_sample_submission`);
- `submission`: `check_submission` reads a submission and turns every defect into one precise line a
  small model can act on, or aligns it to the expected ids with typed predictions;
- `scoring`: `grade_submission` scores a valid submission with the task's metric -> `Grade`.

Nothing here runs code or writes files. The names are importable from `tabcoder.grading` itself.
"""

from tabcoder.grading.scoring import Grade, grade_submission
from tabcoder.grading.splits import Split, make_folds, make_sample_submission, make_split
from tabcoder.grading.submission import SUBMISSION_NAME, TEST_NAME, check_submission

__all__ = [
    "SUBMISSION_NAME",
    "TEST_NAME",
    "Grade",
    "Split",
    "check_submission",
    "grade_submission",
    "make_folds",
    "make_sample_submission",
    "make_split",
]
