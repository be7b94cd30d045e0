"""Errors a user sees: each names the file, key or row at fault and says what is wrong."""


class CorpusSlimError(Exception):
    """Base of the errors the CLI reports as one message and a non-zero exit status."""


class ConfigError(CorpusSlimError):
    """The YAML config is invalid; the message names the key path."""


class ShardInputError(CorpusSlimError):
    """An input shard cannot be used (unreadable, not Parquet, wrong schema); the message names the file."""


class OutputConflictError(CorpusSlimError):
    """The output directory holds a run of a different config."""


class TornFileError(CorpusSlimError):
    """An intermediate file is missing, truncated or changed; it is rebuilt, never used."""


class OutputError(CorpusSlimError):
    """The output directory cannot be written (disk full, read-only); nothing is recorded as done for it."""
