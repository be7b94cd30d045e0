"""CorpusSlim pipeline: config, runner, Dask cluster, shard I/O, stages, stats, CLI."""
