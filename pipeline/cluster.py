"""The Dask client: an embedded LocalCluster by default, or an existing scheduler."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from distributed import Client, LocalCluster


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """Yield a ``distributed.Client``.

    Local workers are separate spawned processes with one thread each (the libraries hold the GIL; forking after
    polars has started its threads can deadlock), bound to 127.0.0.1, dashboard included.
    """
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client
