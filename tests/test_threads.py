"""Per-process resources used from several threads at once (a ``dask worker --nthreads 2`` runs two tasks in one
process): each loads once, nobody sees it half-built, and answers equal those of one thread alone."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from corpusslim.filters.langid import LanguageIdentifier
from corpusslim.runtime.resources import STARTUP, _startup, count_tokens
from tests.conftest import FIXTURES

THREADS = 8


def together(fn, n: int = THREADS) -> list:
    """``fn(i)`` called from ``n`` threads released at the same moment; results in thread order."""
    barrier = threading.Barrier(n)

    def call(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, range(n)))


def _texts() -> list[str]:
    with (FIXTURES / "lid_9lang.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][::10]


def test_a_resource_asked_for_by_many_threads_loads_once_and_is_charged_once():
    calls = []

    @_startup
    def load(name):
        calls.append(name)
        end = time.thread_time() + 0.05  # 50 ms of CPU: long enough for the other threads to ask meanwhile
        while time.thread_time() < end:
            pass
        return object()

    def ask(_):
        before = STARTUP["cpu_seconds"]
        obj = load("model")
        return obj, STARTUP["cpu_seconds"] - before

    results = together(ask)
    assert calls == ["model"]
    assert len({id(obj) for obj, _ in results}) == 1
    charged = [cpu for _, cpu in results if cpu > 0]
    assert len(charged) == 1 and charged[0] >= 0.05  # the loading thread's task only, at its own CPU


def test_identifier_first_used_by_many_threads_answers_as_one_thread():
    texts = _texts()
    lid = LanguageIdentifier(langdetect_below=1.0)  # langdetect asked about every text: its profiles load too
    concurrent = together(lambda _: lid.identify(texts))
    alone = lid.identify(texts)
    assert "langdetect" in alone.method and len(set(alone.lang)) >= 5
    assert all(r == alone for r in concurrent)


def test_token_counts_under_threads_equal_one_thread():
    texts = _texts()
    assert together(lambda _: count_tokens(texts)) == [count_tokens(texts)] * THREADS
