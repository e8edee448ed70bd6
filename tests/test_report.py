"""report.html: written by every run, rebuilt by `tabcoder report`, self-contained (nothing fetched from the
network), and rendered by a real headless Chromium."""

from __future__ import annotations

import re

import pytest

from tabcoder import RunConfig, run
from tabcoder.report import write_report

from support import CHROMIUM, WINE, WINE_ANSWERS, Responder, chromium, tabcoder

#: Anything that would make a browser fetch something: external scripts, styles, images, fonts, frames.
EXTERNAL = re.compile(r"""(?:src|href|srcset|action|data)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)|@import""",
                      re.IGNORECASE)


@pytest.fixture(scope="module")
def tree_run(tmp_path_factory):
    """A small tree run: a failed draft that is repaired, improvements, a confirmed choice."""
    out = tmp_path_factory.mktemp("report")
    responder = Responder(broken=(2,))
    config = RunConfig(baseline=False, out_dir=out, strategy="tree", iterations=6, timeout=60, confirm_folds=2, confirm_top=2,
                       answers=WINE_ANSWERS)
    return run(WINE, config=config, backend=responder.backend())


def test_every_run_writes_a_self_contained_report(tree_run):
    html = (tree_run.run_dir / "report.html").read_text()
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "<script src" not in html and "<link" not in html
    for index in range(1, 7):
        assert f'id="node-{index}"' in html
    assert "Diff to #2" in html and "cultivarr" in html          # the repair's diff to its failed parent
    assert "How the final attempt was chosen" in html and "fold scores" in html
    assert f"cd {tree_run.solution.parent}" in html               # the reproduce command
    assert "Score over time" in html and "Time and tokens per attempt" in html
    assert re.search(r"Time: search [\d.]+ s · confirmation [\d.]+ s · ensemble [\d.]+ s · final [\d.]+ s", html)
    assert "The target column name is misspelled" in html        # the reflection


def test_report_command_rebuilds_it(tree_run):
    path = tree_run.run_dir / "report.html"
    before = path.read_text()
    path.unlink()
    done = tabcoder("report", tree_run.run_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(path) and path.read_text() == before


def test_report_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    done = tabcoder("report", tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "run.json" in done.stderr


def test_report_of_an_unfinished_run_says_how_to_resume(tree_run, tmp_path):
    import json
    import shutil

    copy = tmp_path / "unfinished"
    shutil.copytree(tree_run.run_dir, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta.pop("result")
    (copy / "run.json").write_text(json.dumps(meta))
    html = write_report(copy).read_text()
    assert "has not finished" in html and f"tabcoder resume {copy}" in html


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="Chromium is not installed at /usr/bin/chromium "
                    "(Debian: apt-get install -y chromium); the browser check of report.html is skipped")
def test_report_renders_in_headless_chromium(tree_run, tmp_path):
    url = (tree_run.run_dir / "report.html").as_uri()
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-ready="6"' in dom.stdout, "the inline script ran and found the six nodes"
    assert dom.stdout.count("<circle") >= 6 and 'id="tree"' in dom.stdout and 'id="scores"' in dom.stdout
    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1200,1600", url, profile=tmp_path / "profile-shot")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000, "a blank page compresses to a few kB"
