"""Text logic of the stages: pure functions and small classes, no Dask and no I/O."""
