"""The dedup stage: its map step (``index``: exact hash, MinHash signature and LSH band keys per document), its
linker (``corpusslim.dedup.driver``) and its apply step (``process`` with a shard's links bound: every document
but the earliest of its cluster is rejected, with ``dup_of`` naming the kept one).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from corpusslim.dedup.config import DedupConfig
from corpusslim.dedup.driver import DedupLinker
from corpusslim.dedup.linking import rows_to_reject
from corpusslim.dedup.tasks import links_in_memory
from corpusslim.filters.minhash import MinHasher, band_keys, exact_hashes, normalise_text, shingle_hashes
from corpusslim.runtime.keys import doc_keys
from corpusslim.stages.base import GlobalStage


class DedupStage(GlobalStage):
    kind = "dedup"
    Config = DedupConfig
    reasons = {
        "exact_dup": "same normalised text as an earlier document (dup_of names it)",
        "near_dup": "MinHash near duplicate of an earlier document (dup_of names the earliest of its cluster)",
    }
    columns = ("dup_cluster", "dup_of")
    requires = ("lid",)
    after = ("segment", "lines")  # Chinese documents are shingled on the words of ``seg``, of the cleaned text
    Linker = DedupLinker

    def __init__(self, config: DedupConfig, duplicates: pl.DataFrame | None = None):
        super().__init__(config)
        self.duplicates = duplicates

    def bind(self, links: pl.DataFrame) -> DedupStage:
        return DedupStage(self.config, duplicates=rows_to_reject(links))

    def in_memory(self, batch: pl.DataFrame) -> DedupStage:
        return self.bind(links_in_memory(batch, self.index(batch, 0), self.config))

    def signature(self) -> dict:
        keys = ("exact", "near", "num_perm", "bands", "rows", "ngram", "ngram_zh", "seed", "scheme")
        return {k: getattr(self.config, k) for k in keys}

    def index(self, batch: pl.DataFrame, shard_number: int) -> pl.DataFrame:
        """The map step: per document its key, id, exact hash, MinHash signature and band keys."""
        cfg = self.config
        out = pl.DataFrame([doc_keys(shard_number, batch["_row"]), batch["id"]])
        norms = [normalise_text(t) for t in batch["text"].to_list()]
        out = out.with_columns(exact=pl.Series(exact_hashes(norms, normalised=True), dtype=pl.UInt64))
        if cfg.near:
            segs = batch["seg"].to_list() if "seg" in batch.columns else [None] * batch.height
            hashes, counts = shingle_hashes(norms, segs, cfg.ngram, cfg.ngram_zh, normalised=True)
            sig = MinHasher(cfg.num_perm, cfg.seed, cfg.scheme).signatures_of_hashes(hashes, counts)
            keys = band_keys(sig, cfg.bands, cfg.rows)
            out = out.with_columns(
                [pl.Series(f"band_{b:03d}", keys[:, b], dtype=pl.UInt64) for b in range(cfg.bands)]
                + [pl.Series("sig", sig.astype(np.uint32), dtype=pl.Array(pl.UInt32, cfg.num_perm))])
        return out

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        """Join the shard's duplicates (rows ``_row``, ``dup_of``, ``dup_cluster``, ``dup_reason``) bound by the
        runner; the earliest member of a cluster gets its own id as ``dup_cluster``."""
        dups = self.duplicates if self.duplicates is not None else pl.DataFrame(
            schema={"_row": pl.UInt32, "dup_of": pl.String, "dup_cluster": pl.String, "dup_reason": pl.String})
        return batch.join(dups.with_columns(pl.col("_row").cast(batch.schema["_row"])), on="_row", how="left",
                          maintain_order="left")

    def decide(self, batch: pl.DataFrame) -> pl.Series:
        return batch["dup_reason"].alias("reject_reason")

    def split(self, annotated: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        kept, rejected = super().split(annotated)
        return kept.drop("dup_reason"), rejected.drop("dup_reason")
