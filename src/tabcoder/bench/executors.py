"""Where benchmark cells run: here, in a local process pool, or as Ray tasks on a cluster.

Scope: one tiny interface, `Executor.map_unordered(fn, items, on_submit)`, calling `on_submit(item)` when
an item is handed to a worker and yielding `(item, result)` as each item finishes; an exception of the
infrastructure (a dead worker, a lost node) is yielded as the result, so the bench can record the cell as
failed and go on. `items` is a plain iterable or a `WorkQueue`, whose items may wait for others: an
executor takes from it only what is ready, and takes again after every result it has yielded (so the
consumer has handled that result first; an AutoML baseline cell waits for the LLM cells of its task and
is handed out with their wall time). `LocalExecutor(workers=1)` runs cells one after the other in this
process; more workers use a `spawn` process pool. `RayExecutor` submits each ready cell as a Ray task (one
CPU each) to the cluster at `address`, or to a local Ray instance when no address is given; Ray is an
optional extra, imported only here.
"""

from __future__ import annotations

import abc
import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from tabcoder.errors import ConfigError

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
RAY_FIX = "pip install 'tabcoder[ray]'"


Submitted = Callable[[Any], None]


def _nothing(item: Any) -> None:
    return None


class WorkQueue:
    """Items handed out in their order, each once `ready(item)` holds. What is handed out is `prepare(item)`,
    computed at that moment, so it can use what the items it waited for produced. `len()` counts the items
    not handed out yet; iterating hands out the ready items one at a time (an executor that only iterates
    gets, at each step, what is ready then)."""

    def __init__(self, items: Iterable[Any], ready: Callable[[Any], bool] | None = None,
                 prepare: Callable[[Any], Any] | None = None) -> None:
        self._waiting = list(items)
        self._ready = ready or (lambda item: True)
        self._prepare = prepare or (lambda item: item)

    def __len__(self) -> int:
        return len(self._waiting)

    def waiting(self) -> list[Any]:
        """The items not handed out yet, in order."""
        return list(self._waiting)

    def take(self, limit: int | None = None) -> list[Any]:
        """Up to `limit` (None: all) ready items, removed from the queue and prepared, in order."""
        taken: list[Any] = []
        position = 0
        while position < len(self._waiting) and (limit is None or len(taken) < limit):
            if self._ready(self._waiting[position]):
                taken.append(self._prepare(self._waiting.pop(position)))
            else:
                position += 1
        return taken

    def __iter__(self) -> Iterator[Any]:
        while batch := self.take(1):
            yield batch[0]


def as_queue(items: Iterable[Any]) -> WorkQueue:
    return items if isinstance(items, WorkQueue) else WorkQueue(items)


class Executor(abc.ABC):
    name: str
    workers: int

    @abc.abstractmethod
    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any],
                      on_submit: Submitted = _nothing) -> Iterator[tuple[Any, Any]]:
        """Run `fn(item)` for every item; call `on_submit(item)` when an item is handed to a worker; yield
        (item, result or exception) in the order they finish. From a `WorkQueue`, take only ready items,
        and take again only after resuming from a yield. Items still waiting when nothing runs are left
        in the queue (the caller sees them in its `len()`)."""


class LocalExecutor(Executor):
    """`workers == 1`: one item after the other, in this process. More: a `spawn` process pool that holds
    at most `workers` items at a time, so that an item handed over is an item running."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {workers})")
        self.workers = workers

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any],
                      on_submit: Submitted = _nothing) -> Iterator[tuple[Any, Any]]:
        queue = as_queue(items)
        if self.workers == 1:
            for item in queue:
                on_submit(item)
                yield item, fn(item)
            return
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
        futures: dict = {}
        try:
            while True:
                for item in queue.take(self.workers - len(futures)):
                    on_submit(item)
                    futures[pool.submit(fn, item)] = item
                if not futures:
                    return
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = futures.pop(future)
                    error = future.exception()
                    yield item, error if error is not None else future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {RAY_FIX}") from exc
    return ray


class RayExecutor(Executor):
    """Cells as Ray tasks. Without `address`, a local Ray instance with `workers` CPUs is started (and
    stopped at the end); with one (e.g. `ray://head:10001` or `auto`), the cluster's CPUs decide."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 1) -> None:
        self.ray = import_ray()
        self.address = address
        self.workers = workers

    def _connect(self) -> bool:
        """Connect (or start a local instance); True when this call started Ray and must stop it."""
        if self.ray.is_initialized():
            return False
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if self.address:
            self.ray.init(address=self.address, **options)
        else:
            self.ray.init(num_cpus=self.workers, **options)
        return True

    def map_unordered(self, fn, items, on_submit=_nothing):
        """Every ready item is submitted at once (Ray queues what the cluster cannot start yet); an item that
        waits for others is submitted once they have finished and their results were handled."""
        ray = self.ray
        queue = as_queue(items)
        started_here = self._connect()
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        pending: dict = {}
        try:
            while True:
                for item in queue.take():
                    on_submit(item)
                    pending[remote.remote(item)] = item
                if not pending:
                    return
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a lost worker fails its cell, not the bench
                        result = exc
                    yield item, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def make_executor(name: str, *, workers: int = 1, address: str | None = None) -> Executor:
    if name == "local":
        if address:
            raise ConfigError("--address is for --executor ray; the local executor runs on this machine")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, workers)
    raise ConfigError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
