"""Applying a model's reply to the current script: SEARCH/REPLACE blocks, function edits, whole scripts."""

from __future__ import annotations

import pytest

from tabcoder.edits import EDIT_FORMATS, Edit, apply_reply, as_edit, same_program

BASE = '''"""Train a model on input/train.csv and write submission.csv."""
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

TARGET = "y"
DROP = ["name"]


def add_features(df):
    df = df.copy()
    df["ratio"] = df["a"] / (df["b"] + 1)
    if "c" in df:
        df["c2"] = df["c"] ** 2
    return df


def make_model():
    return RandomForestClassifier(n_estimators=200, random_state=0)


train = pd.read_csv("input/train.csv")
test = pd.read_csv("input/test.csv")
X = add_features(train.drop(columns=[TARGET] + DROP))
y = train[TARGET]
model = make_model()
model.fit(X, y)
proba = model.predict_proba(add_features(test.drop(columns=DROP)))[:, 1]
submission = pd.DataFrame({"id": test["id"], TARGET: proba})
submission.to_csv("submission.csv", index=False)
'''

MAKE_MODEL = '''def make_model():
    return RandomForestClassifier(n_estimators=200, random_state=0)
'''


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def fenced(code: str) -> str:
    return f"Here is the change.\n\n```python\n{code}\n```\n"


# -- SEARCH/REPLACE ---------------------------------------------------------------------------------------

def test_formats():
    assert EDIT_FORMATS == ("search-replace", "functions", "whole")


def test_exact_search_replace():
    reply = block("    return RandomForestClassifier(n_estimators=200, random_state=0)",
                  "    return RandomForestClassifier(n_estimators=500, random_state=0)")
    edit = apply_reply(reply, BASE)
    assert edit == Edit(BASE.replace("n_estimators=200", "n_estimators=500"), "search-replace", None, 1)
    assert edit.applied


def test_first_occurrence_wins():
    base = "a = 1\nb = 2\na = 1\n"
    assert apply_reply(block("a = 1", "a = 3"), base).code == "a = 3\nb = 2\na = 1\n"


def test_trailing_whitespace_is_ignored():
    reply = block('    df = df.copy()   \n    df["ratio"] = df["a"] / (df["b"] + 1)\t',
                  '    df = df.copy()\n    df["ratio"] = df["a"] / (df["b"] + 2)')
    edit = apply_reply(reply, BASE)
    assert edit.applied
    assert edit.code == BASE.replace('(df["b"] + 1)', '(df["b"] + 2)')


def test_indentation_difference_is_ignored_and_replacement_reindented():
    search = 'if "c" in df:\n    df["c2"] = df["c"] ** 2'
    replace = 'if "c" in df:\n    df["c2"] = df["c"] ** 2\n    df["c3"] = df["c"] ** 3\ndf["d"] = 1'
    edit = apply_reply(block(search, replace), BASE)
    assert edit.applied
    expected = BASE.replace('        df["c2"] = df["c"] ** 2\n',
                            '        df["c2"] = df["c"] ** 2\n        df["c3"] = df["c"] ** 3\n    df["d"] = 1\n')
    assert edit.code == expected


def test_over_indented_search_is_dedented():
    search = "        def make_model():\n            return RandomForestClassifier(n_estimators=200, random_state=0)"
    replace = "        def make_model():\n            return RandomForestClassifier(n_estimators=300)"
    edit = apply_reply(block(search, replace), BASE)
    assert edit.code == BASE.replace(MAKE_MODEL, "def make_model():\n    return RandomForestClassifier(n_estimators=300)\n")


def test_two_blocks_apply_in_order():
    first = block("    return RandomForestClassifier(n_estimators=200, random_state=0)",
                  "    return RandomForestClassifier(n_estimators=500, random_state=0)")
    second = block("    return RandomForestClassifier(n_estimators=500, random_state=0)",
                   "    return RandomForestClassifier(n_estimators=500, max_depth=8, random_state=0)")
    edit = apply_reply("Two changes:\n" + first + "\nand\n" + second, BASE)
    assert edit.blocks == 2
    assert edit.code == BASE.replace("n_estimators=200,", "n_estimators=500, max_depth=8,")


def test_missing_search_text_names_block_and_closest_line():
    ok = block('TARGET = "y"', 'TARGET = "y"  # the label')
    wrong = block('DROP = ["name", "id"]', 'DROP = ["name", "id", "city"]')
    edit = apply_reply(ok + wrong, BASE)
    assert edit.code is None and edit.form == "search-replace" and not edit.applied
    assert edit.error is not None
    assert "block 2" in edit.error
    assert 'DROP = ["name", "id"]' in edit.error
    assert 'the closest is line 6: "DROP = ["name"]"' in edit.error
    assert "Copy the SEARCH lines exactly" in edit.error and "whole script" in edit.error
    assert len(edit.error) < 400


def test_later_missing_line_is_the_one_shown():
    search = "def make_model():\n    return GradientBoostingClassifier()"
    edit = apply_reply(block(search, "def make_model():\n    return None"), BASE)
    assert edit.error is not None
    assert 'block 1 did not apply: it starts "def make_model():"' in edit.error
    assert '"return GradientBoostingClassifier()" is not in the script' in edit.error
    assert "line 18" in edit.error


def test_lines_present_but_not_together():
    edit = apply_reply(block("train = pd.read_csv(\"input/train.csv\")\ny = train[TARGET]", "pass"), BASE)
    assert edit.error is not None
    assert "not together" in edit.error and "line 21" in edit.error


def test_long_lines_keep_feedback_short():
    long = "z = " + "1 + " * 200 + "1"
    edit = apply_reply(block(long + "\n" + long, "z = 2"), BASE + long + "\n")
    assert edit.error is not None
    assert len(edit.error) < 400


@pytest.mark.parametrize(("reply", "marker"), [
    ("<<<<<<< SEARCH\nTARGET = \"y\"\n", '"======="'),
    ("<<<<<<< SEARCH\nTARGET = \"y\"\n>>>>>>> REPLACE\n", '"======="'),
    ("<<<<<<< SEARCH\nTARGET = \"y\"\n=======\nTARGET = \"z\"\n", '">>>>>>> REPLACE"'),
    (block('TARGET = "y"', 'TARGET = "z"') + "<<<<<<< SEARCH\nDROP\n=======\nDROP\n<<<<<<< SEARCH\n",
     '">>>>>>> REPLACE"'),
])
def test_unterminated_block(reply, marker):
    edit = apply_reply(reply, BASE)
    assert edit.code is None and edit.form == "search-replace"
    assert edit.error is not None and "unterminated" in edit.error and f"no {marker} line" in edit.error


def test_search_replace_without_a_script():
    edit = apply_reply(block('TARGET = "y"', 'TARGET = "z"'), None)
    assert edit == Edit(None, "search-replace", edit.error)
    assert edit.error is not None and "no script to edit yet" in edit.error and "```python" in edit.error


def test_empty_search_is_an_error():
    edit = apply_reply(block("\n", "import numpy as np"), BASE)
    assert edit.code is None
    assert edit.error is not None and "block 1 has an empty SEARCH" in edit.error


def test_fenced_blocks_with_other_marker_lengths_and_case():
    reply = ("I raise the number of trees.\n\n```python\n<<<<< search\n"
             "    return RandomForestClassifier(n_estimators=200, random_state=0)\n=========\n"
             "    return RandomForestClassifier(n_estimators=400, random_state=0)\n>>>>>>>>> Replace \n```\n")
    edit = apply_reply(reply, BASE)
    assert edit.form == "search-replace" and edit.blocks == 1
    assert edit.code == BASE.replace("n_estimators=200", "n_estimators=400")


def test_fence_inside_a_block_is_not_script_text():
    reply = ("<<<<<<< SEARCH\n```python\nTARGET = \"y\"\n```\n=======\n```python\nTARGET = \"label\"\n```\n"
             ">>>>>>> REPLACE\n")
    assert apply_reply(reply, BASE).code == BASE.replace('TARGET = "y"', 'TARGET = "label"')


def test_blank_edge_lines_of_a_block_may_be_dropped():
    reply = block('\nTARGET = "y"\nDROP = ["name"]\n\n\n\n\n', 'TARGET = "y"\nDROP = ["name", "city"]')
    assert apply_reply(reply, BASE).code == BASE.replace('["name"]', '["name", "city"]')


def test_crlf_script_keeps_its_line_endings():
    base = BASE.replace("\n", "\r\n")
    edit = apply_reply(block('TARGET = "y"\nDROP = ["name"]', 'TARGET = "z"\nDROP = []'), base)
    assert edit.code == base.replace('TARGET = "y"\r\nDROP = ["name"]', 'TARGET = "z"\r\nDROP = []')


# -- whole scripts ----------------------------------------------------------------------------------------

def test_whole_script_reply():
    new = BASE.replace("RandomForestClassifier", "ExtraTreesClassifier").strip()
    edit = apply_reply(fenced(new), BASE)
    assert edit == Edit(new, "whole")


def test_first_draft_is_whole_even_when_only_definitions():
    edit = apply_reply(fenced(MAKE_MODEL), None)
    assert edit == Edit(MAKE_MODEL.strip(), "whole")


def test_unparsable_script_that_writes_a_csv_is_whole():
    code = BASE.replace("def make_model():", "def make_model(:")
    edit = apply_reply(fenced(code), BASE)
    assert edit == Edit(code.strip(), "whole")


def test_no_code_in_the_reply():
    edit = apply_reply("I think the model is fine as it is.", BASE)
    assert edit == Edit(None, "none")
    assert not edit.applied


# -- functions edits --------------------------------------------------------------------------------------

NEW_MAKE_MODEL = '''def make_model():
    return RandomForestClassifier(n_estimators=600, min_samples_leaf=2, random_state=0)
'''


def test_function_replacement_keeps_the_rest_byte_identical():
    edit = apply_reply(fenced(NEW_MAKE_MODEL), BASE)
    assert edit == Edit(BASE.replace(MAKE_MODEL, NEW_MAKE_MODEL), "functions", None, 1)


def test_decorated_function_replaces_the_whole_definition():
    base = BASE.replace(MAKE_MODEL, "@staticmethod\n" + MAKE_MODEL)
    edit = apply_reply(fenced("@functools.cache\n" + NEW_MAKE_MODEL), base)
    assert edit.code == BASE.replace(MAKE_MODEL, "@functools.cache\n" + NEW_MAKE_MODEL)


def test_new_function_is_inserted_after_the_last_definition():
    helper = 'def add_counts(df):\n    df["n"] = df.notna().sum(axis=1)\n    return df\n'
    edit = apply_reply(fenced(helper + "\n\n" + NEW_MAKE_MODEL), BASE)
    assert edit.blocks == 2
    assert edit.code == BASE.replace(MAKE_MODEL, NEW_MAKE_MODEL + "\n\n" + helper)


def test_new_function_without_definitions_in_the_script_goes_after_the_imports():
    base = "import pandas as pd\n\ndf = pd.read_csv('input/train.csv')\n"
    edit = apply_reply(fenced("def f(df):\n    return df"), base)
    assert edit.code == "import pandas as pd\n\n\ndef f(df):\n    return df\n\ndf = pd.read_csv('input/train.csv')\n"


def test_new_import_is_added_once():
    reply = fenced("import numpy as np\nimport pandas as pd\nfrom sklearn.ensemble import RandomForestClassifier\n\n\n"
                   'def add_features(df):\n    df = df.copy()\n    df["log_a"] = np.log1p(df["a"])\n    return df')
    edit = apply_reply(reply, BASE)
    assert edit.applied and edit.code is not None
    assert edit.code.count("import numpy as np\n") == 1
    assert edit.code.count("import pandas as pd\n") == 1
    assert edit.code.count("RandomForestClassifier\n") == 1
    assert edit.code.startswith('"""Train a model on input/train.csv and write submission.csv."""\nimport pandas as pd\n'
                                "from sklearn.ensemble import RandomForestClassifier\nimport numpy as np\n\n")
    again = apply_reply(reply, edit.code)
    assert again.code == edit.code


def test_future_import_goes_first():
    edit = apply_reply(fenced("from __future__ import annotations\n\n" + NEW_MAKE_MODEL), BASE)
    assert edit.code is not None
    docstring, rest = edit.code.split("\n", 1)
    assert rest.startswith("from __future__ import annotations\nimport pandas as pd\n")


def test_upper_case_constant_is_replaced_and_a_new_one_added():
    edit = apply_reply(fenced('DROP = ["name", "city"]\nSEED: int = 7'), BASE)
    assert edit.blocks == 2
    expected = BASE.replace('DROP = ["name"]', 'DROP = ["name", "city"]').replace(
        "RandomForestClassifier\n\n", "RandomForestClassifier\n\nSEED: int = 7\n\n", 1)
    assert edit.code == expected


def test_functions_edit_result_may_equal_the_script():
    assert apply_reply(fenced(MAKE_MODEL), BASE) == Edit(BASE, "functions", None, 1)


def test_syntax_error_in_a_functions_edit():
    edit = apply_reply(fenced("def helper(df):\n    return df\n\ndef make_model(:\n    return None"), BASE)
    assert edit.code is None and edit.form == "functions"
    assert edit.error is not None and "does not parse" in edit.error and "line 4" in edit.error


def test_script_that_does_not_parse():
    edit = apply_reply(fenced(NEW_MAKE_MODEL), BASE.replace("def make_model():", "def make_model(:"))
    assert edit.code is None and edit.form == "functions"
    assert edit.error is not None and "current script does not parse" in edit.error
    assert "SEARCH/REPLACE" in edit.error


def test_nothing_to_apply():
    edit = apply_reply(fenced('"""Nothing changes."""\n...'), BASE)
    assert edit.code is None and edit.form == "functions"
    assert edit.error is not None and "no top-level function" in edit.error


# -- never raises -----------------------------------------------------------------------------------------

ODD_REPLIES = [
    "",
    "\n\n",
    "<<<<<<< SEARCH",
    "=======\n>>>>>>> REPLACE",
    "<<<<<<< SEARCH\n=======\n>>>>>>> REPLACE",
    "<<<<<<< SEARCH\n\n=======\n\n>>>>>>> REPLACE\n" * 3,
    "```python\n```",
    "```python\n\x00\x01\xff\ufffd import os\n```",
    "```python\n" + "-" * 100_000 + "1\n```",
    "```python\n" + "(" * 500 + "\n```",
    "```python\nimport os\n" + "def f():\n    return 1\n" * 5_000 + "```",
    "x" * 1_000_000,
    block("\x00", "\x00") + block("  \t", "y"),
    block("return df", "return df\r\n") + "\r\n\r",
    "```python\nimport x\nprint('submission')",
    "```python\ndef f(\n```",
]


@pytest.mark.parametrize("reply", ODD_REPLIES)
@pytest.mark.parametrize("base", [BASE, None, "", "def broken(:\n", "\x00"])
def test_odd_replies_never_raise(reply, base):
    edit = apply_reply(reply, base)
    assert edit.form in EDIT_FORMATS + ("none",)
    assert edit.applied == (edit.code is not None and edit.error is None)


# -- a whole script as the edit of its parent (what self-training learns instead of the copy) ---------------

def test_a_changed_function_becomes_a_functions_edit_that_gives_the_script_back():
    changed = BASE.replace("n_estimators=200", "n_estimators=500, min_samples_leaf=2")
    reply = as_edit(BASE, changed, "functions")
    assert reply is not None and "def make_model():" in reply
    assert "def add_features" not in reply and "read_csv" not in reply  # only what changed
    assert apply_reply(reply, BASE).code.strip() == changed.strip()


def test_a_change_outside_any_definition_becomes_search_replace_blocks():
    changed = BASE.replace('submission.to_csv("submission.csv", index=False)',
                           'submission.to_csv("submission.csv", index=False, float_format="%.6f")')
    reply = as_edit(BASE, changed, "functions")
    assert reply is not None and "<<<<<<< SEARCH" in reply and "def add_features" not in reply
    assert apply_reply(reply, BASE).code.strip() == changed.strip()
    blocks = as_edit(BASE, BASE.replace('DROP = ["name"]', 'DROP = ["name", "ticket"]'), "search-replace")
    assert blocks is not None and blocks.count("<<<<<<< SEARCH") == 1
    assert apply_reply(blocks, BASE).code == BASE.replace('DROP = ["name"]', 'DROP = ["name", "ticket"]')


def test_no_change_is_no_edit_and_docstrings_or_comments_are_the_same_program():
    assert as_edit(BASE, BASE, "functions") is None
    assert as_edit(BASE, BASE + "print(1)\n", "whole") is None  # a whole-script prompt has no edit to learn
    respelled = BASE.replace('"""Train a model', '"""Fit a model').replace("def make_model():\n",
                                                                       "def make_model():\n    # more trees?\n")
    assert same_program(BASE, respelled)
    assert not same_program(BASE, BASE.replace("n_estimators=200", "n_estimators=201"))
    assert not same_program(BASE, "def broken(:\n")
