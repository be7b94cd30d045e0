"""Dedup's settings (FineWeb's MinHash parameters by default, each cited)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from corpusslim.filters.minhash import DEFAULT_N, DEFAULT_N_ZH, choose_bands
from corpusslim.stages.base import StageConfig

DOCS_PER_REDUCE_TASK = 2_000_000


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
