"""Assembly and verification of packaged GGUF weights (fake part packages, plus one real model)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tabcoder.backends import weights
from tabcoder.backends.weights import CATALOG, ModelStore, PackagedModel, Part, cache_home, split_parts
from tabcoder.errors import BackendError

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"second part " * 100, b"tail"]


def make_parts(root: Path, chunks: list[bytes]) -> dict[str, Path]:
    """Fake part packages fake_partN/data/partNN.bin under `root`; returns module -> package dir."""
    found = {}
    for i, chunk in enumerate(chunks, 1):
        pkg = root / f"fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        found[f"fake_part{i}"] = pkg
    return found


def fake_model(chunks: list[bytes] = CHUNKS, sha256: str | None = None) -> PackagedModel:
    whole = b"".join(chunks)
    return PackagedModel(
        name="fake-model",
        size=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        parts=split_parts("fake_part", "fake-part", len(chunks)),
    )


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    found = make_parts(tmp_path / "site", CHUNKS)
    return ModelStore(tmp_path / "home", locate=found.get)


def test_assembles_parts_in_order(store: ModelStore) -> None:
    model = fake_model()
    path = store.ensure(model)
    assert path == store.home / "models" / "fake-model.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert store.is_verified(model)
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert store.state(model).verified


def test_hash_mismatch_is_backend_error_and_leaves_no_file(store: ModelStore) -> None:
    model = fake_model(sha256="0" * 64)
    with pytest.raises(BackendError, match="corrupt or mismatched.*--force-reinstall fake-part1"):
        store.ensure(model)
    assert list((store.home / "models").iterdir()) == []


def test_missing_parts_name_packages_and_fix(tmp_path: Path) -> None:
    found = make_parts(tmp_path / "site", CHUNKS)
    del found["fake_part2"]
    store = ModelStore(tmp_path / "home", locate=found.get)
    with pytest.raises(BackendError, match=r"missing package\(s\) fake-part2; fix: pip install 'tabcoder\[local\]'"):
        store.ensure(fake_model())
    state = store.state(fake_model())
    assert [p.dist for p in state.missing] == ["fake-part2"] and not state.available


def test_marker_skips_rehash_until_file_changes(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    model = fake_model()
    path = store.ensure(model)
    calls = []
    real = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: calls.append(p) or real(p))
    assert store.ensure(model) == path
    assert calls == []  # marker matched: no hashing
    os.utime(path, ns=(1, 1))  # mtime changed: hash again, still right, marker rewritten
    assert store.ensure(model) == path and calls == [path]
    assert store.ensure(model) == path and calls == [path]


def test_corrupted_assembled_file_is_rebuilt(store: ModelStore) -> None:
    model = fake_model()
    path = store.ensure(model)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, new mtime, wrong content
    assert store.ensure(model).read_bytes() == b"".join(CHUNKS)


def test_in_place_model_is_verified_not_copied(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "one_file_pkg"
    pkg.mkdir(parents=True)
    (pkg / "m.gguf").write_bytes(b"GGUF tiny")
    model = PackagedModel("tiny", 9, hashlib.sha256(b"GGUF tiny").hexdigest(),
                          (Part("one_file_pkg", "m.gguf", "one-file-pkg"),), install_fix="pip install one-file-pkg",
                          in_place=True)
    store = ModelStore(tmp_path / "home", locate={"one_file_pkg": pkg}.get)
    assert store.ensure(model) == pkg / "m.gguf"
    assert store.is_verified(model)
    (pkg / "m.gguf").write_bytes(b"GGUF tinY")
    with pytest.raises(BackendError, match="--force-reinstall one-file-pkg"):
        store.ensure(model)
    empty = ModelStore(tmp_path / "home2", locate=lambda m: None)
    with pytest.raises(BackendError, match="fix: pip install one-file-pkg"):
        empty.ensure(model)


def test_cache_home_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TABCODER_HOME", str(tmp_path / "th"))
    assert cache_home() == tmp_path / "th"
    monkeypatch.delenv("TABCODER_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "tabcoder"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_home() == Path.home() / ".cache" / "tabcoder"


def test_unknown_model_name() -> None:
    with pytest.raises(BackendError, match="packaged models: qwen2.5-coder-1.5b"):
        weights.ensure_model("gpt-5")


@pytest.mark.parametrize("name", list(CATALOG))
def test_catalog_part_layout_matches_installed_packages(name: str) -> None:
    model = CATALOG[name]
    missing = ModelStore().missing_parts(model)
    if len(missing) == len(model.parts):
        pytest.skip(f"{name} not installed ({model.install_fix})")
    assert missing == (), f"{name}: partial install; fix: {model.install_fix}"


@pytest.mark.slow
def test_real_model_assembles_with_pinned_sha256(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TABCODER_HOME", str(tmp_path))
    path = weights.ensure_model("qwen2.5-coder-0.5b")
    assert path == tmp_path / "models" / "qwen2.5-coder-0.5b.gguf" == weights.model_path("qwen2.5-coder-0.5b")
    assert path.stat().st_size == 491_400_064
    assert weights.sha256_file(path) == CATALOG["qwen2.5-coder-0.5b"].sha256
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
