"""The protocol between the runner and a global stage's driver side (its ``Linker``).

The runner maps every shard (the stages before the global one, then ``GlobalStage.index``), then asks the
stage's linker for the links of every document, then applies (``GlobalStage.bind``) per shard. The linker
schedules its own Dask tasks through the :class:`PhaseContext` the runner gives it and records its units in the
run's manifest, so a kill in the middle of linking resumes.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import polars as pl
from distributed import Client

from corpusslim.runtime.manifest import Manifest

LINK_KEY = "doc"  # the document-key column of a linker's links (``corpusslim.runtime.keys`` encoding)


class PhaseContext(Protocol):
    """What the runner offers a linker."""

    client: Client
    manifest: Manifest
    work: str  # the run's directory for intermediates (deleted when the run is complete)
    before: list[str]  # kinds of the stages that ran before the global one

    def each(self, phase: str, futures: list) -> Iterable[dict]:
        """Results of ``futures`` as they finish, with progress reported and output errors raised clearly."""

    def index(self) -> dict[int, dict]:
        """Shard number -> file record of its index (this run's and earlier ``--against`` runs')."""

    def sources(self) -> dict[int, dict]:
        """Shard number -> where its documents are: ``pre`` (this run's intermediate) and ``index``, or for an
        earlier run ``index`` and ``outputs`` (its kept and rejected files)."""

    def id_files(self) -> list[dict]:
        """File records of every mapped shard's ids."""


@dataclass(frozen=True)
class Links:
    """What linking returns: per shard number, the record of the file holding the links of that shard's
    documents (rows keyed by ``LINK_KEY``, for the documents linking has something to say about; read on the
    worker that applies the shard, so links never pass through the driver), the frame a shard without a file
    gets, and the CPU seconds linking spent (shared among the shards as part of the global stage's cost)."""

    files: dict[int, dict]
    empty: pl.DataFrame
    cpu_seconds: float


class Linker(Protocol):
    """The driver side of a global stage."""

    reads_text: bool  # linking reads every shard's map intermediate (not only the index)

    def __init__(self, config, context: PhaseContext) -> None: ...

    def intact(self, fingerprint: str) -> bool:
        """Linking of the index state ``fingerprint`` is recorded and its files are intact."""

    def link(self, fingerprint: str) -> Links:
        """Run (or resume) every linking phase for the index state ``fingerprint``."""

    @staticmethod
    def summary(manifest: Manifest) -> dict:
        """Figures for ``stats.json`` (e.g. repeated ids), from the linking recorded in a run's manifest."""
