"""Global exact + MinHash near-duplicate removal: the stage's config, its map step and its apply step.

The phases (DESIGN.md section 3) are driven by the runner: *map* (``DedupStage.index``, per shard, on the workers)
turns each surviving document into compact keys (exact hash, MinHash signature, LSH band keys) written as an index
file; *reduce*, *verify* and *cluster* (``corpusslim.dedup``) find the duplicate pairs across all shards; *apply*
(``DedupStage.process`` with the shard's duplicates bound) rejects every document but the earliest of its cluster.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from corpusslim.filters.minhash import (
    DEFAULT_N,
    DEFAULT_N_ZH,
    MinHasher,
    band_keys,
    choose_bands,
    exact_hashes,
    shingles,
)
from corpusslim.stages.base import Stage, StageConfig

DOCS_PER_REDUCE_TASK = 2_000_000
DOC = "_doc"  # document key: global shard number << 32 | row; orders documents by arrival


def doc_keys(shard_number: int, rows: pl.Series) -> pl.Series:
    return pl.Series(DOC, (np.uint64(shard_number) << np.uint64(32)) | rows.cast(pl.UInt64).to_numpy())


def shard_of(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(32)).astype(np.int64)


def shard_expr(column: str) -> pl.Expr:
    """The shard number a document-key column encodes, as a polars expression (``shard_of`` for frames)."""
    return (pl.col(column) // (1 << 32)).cast(pl.Int64)


def row_of(keys: np.ndarray) -> np.ndarray:
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


class DedupConfig(StageConfig):
    kind: Literal["dedup"] = "dedup"
    exact: bool = Field(True, description="remove exact duplicates (hash of NFKC, case-folded, space-collapsed text)")
    near: bool = Field(True, description="remove near duplicates with MinHash LSH")
    # 112 permutations as 14 bands x 8 rows, word 5-grams: FineWeb's MinHash settings (Penedo et al. 2024).
    num_perm: int = Field(112, ge=2, le=1024)
    bands: int | None = Field(None, ge=1, description="LSH bands; default 14, or chosen from `threshold`")
    rows: int | None = Field(None, ge=1, description="rows per band; default 8, or chosen from `threshold`")
    threshold: float = Field(0.8, gt=0.0, le=1.0,
                             description="Jaccard similarity at or above which two documents are near duplicates")
    choose_bands_from_threshold: bool = Field(False, description="pick bands x rows for `threshold` instead of 14x8")
    ngram: int = Field(DEFAULT_N, ge=1, description="word n-gram size for space-delimited languages")
    # 5: a 5% word edit gives the same Jaccard (0.63) on jieba-word 5-grams of zh_wiki as on English word 5-grams
    # (bench/minhash_speed.py --shingle-study; filters/minhash.py).
    ngram_zh: int = Field(DEFAULT_N_ZH, ge=1, description="jieba-word n-gram size for Chinese (from `seg`)")
    seed: int = Field(1, ge=0, description="MinHash permutation seed")
    # datasketch 2.x's default MinHash scheme; "legacy" reproduces datasketch 1.x (and MinHash(scheme="legacy")).
    scheme: Literal["affine32", "legacy"] = Field("affine32", description="datasketch MinHash permutation scheme")
    # exact: on planted near-duplicates (bench/dedup_bench.py) 14x8 with exact verification reaches precision 0.99
    # and recall 0.99 at 0.8; the signature estimate (sd ~0.04 at 112 permutations) lets pairs of 0.70-0.79
    # through (precision 0.93) and drops some of 0.80-0.85 (recall 0.95), for 28% less dedup CPU.
    verify: Literal["signature", "exact", "none"] = Field(
        "exact", description="check candidate pairs by exact shingle Jaccard, or estimated from signatures")
    # auto: one reduce task per band and per DOCS_PER_REDUCE_TASK documents, so a task's memory stays bounded
    # (a band task holds 16 bytes per document plus polars' working copies: ~300 MB at 1M documents, measured in
    # bench/results/dedup.md) however large the corpus grows.
    partitions: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="reduce tasks per band (key ranges), to bound reduce memory; auto: 1 per 2M documents")

    def reduce_partitions(self, docs: int) -> int:
        """Reduce tasks per key column for a corpus of ``docs`` indexed documents."""
        return self.partitions if self.partitions != "auto" else max(1, -(-docs // DOCS_PER_REDUCE_TASK))

    @model_validator(mode="after")
    def _bands(self) -> DedupConfig:
        if self.bands is None or self.rows is None:
            b, r = choose_bands(self.threshold, self.num_perm) if self.choose_bands_from_threshold else (14, 8)
            object.__setattr__(self, "bands", self.bands or b)
            object.__setattr__(self, "rows", self.rows or r)
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class DedupStage(Stage):
    kind = "dedup"
    Config = DedupConfig
    reasons = {
        "exact_dup": "same normalised text as an earlier document (dup_of names it)",
        "near_dup": "MinHash near duplicate of an earlier document (dup_of names the earliest of its cluster)",
    }
    columns = ("dup_cluster", "dup_of")
    requires = ("lid",)
    after = ("segment",)  # Chinese documents are shingled on the words of ``seg``
    is_global = True

    def __init__(self, config: DedupConfig, duplicates: pl.DataFrame | None = None):
        super().__init__(config)
        self.duplicates = duplicates

    def index(self, batch: pl.DataFrame, shard_number: int) -> pl.DataFrame:
        """The map step: per document its key, id, exact hash, MinHash signature and band keys."""
        cfg = self.config
        out = pl.DataFrame([doc_keys(shard_number, batch["_row"]), batch["id"]])
        texts = batch["text"].to_list()
        out = out.with_columns(exact=pl.Series(exact_hashes(texts), dtype=pl.UInt64))
        if cfg.near:
            segs = batch["seg"].to_list() if "seg" in batch.columns else [None] * batch.height
            docs = [shingles(t, s, cfg.ngram, cfg.ngram_zh) for t, s in zip(texts, segs)]
            sig = MinHasher(cfg.num_perm, cfg.seed, cfg.scheme).signatures(docs)
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
