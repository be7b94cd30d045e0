"""CorpusSlim pipeline: config, runner, Dask cluster, shard I/O, stages, stats, CLI; the Python API
(``corpusslim.api``) is re-exported here: ``corpusslim.run``, ``dry_run``, ``plan_order``, ``what_if``, ``load_run``,
``rebuild_report``, ``resolve_config``, ``RunResult``, ``Run``."""

API = ("run", "dry_run", "plan_order", "what_if", "load_run", "rebuild_report", "resolve_config", "RunResult", "Run")
__all__ = list(API)


def __getattr__(name: str):
    """Load the API on first use, so that ``import corpusslim`` (in every Dask worker) stays light."""
    if name in API:
        from corpusslim import api

        return getattr(api, name)
    raise AttributeError(f"module 'corpusslim' has no attribute {name!r}")
