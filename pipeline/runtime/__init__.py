"""The job on Dask: units of work, the tasks, the manifest, storage and atomic writes."""
