"""The run config: one YAML file, loaded safely and validated into typed models before any worker starts.

Relative paths in the file (``input``, ``output``) are resolved against the directory of the config file, so a
config means the same run whatever the current directory.
"""
from __future__ import annotations

import functools
import hashlib
import json
import operator
import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from corpusslim.errors import ConfigError
from corpusslim.registry import STAGES
from corpusslim.runtime.inputs import FORMATS

# One registry: the config of every registered stage, told apart by its ``kind``.
StageConfigs = Annotated[functools.reduce(operator.or_, (cls.Config for cls in STAGES.values())),
                         Field(discriminator="kind")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostConfig(Strict):
    """The full cost of a batch: cleaning CPU, acquiring the raw input and storing what is kept (pipeline/ledger.py)."""

    # On-demand price of one vCPU of an AWS c5.24xlarge (96 vCPU at $4.08/h, us-east-1) = $0.0425 per vCPU-hour.
    usd_per_cpu_hour: float = Field(0.0425, ge=0.0)
    cpu_seconds_per_raw_token: float | None = Field(
        None, ge=0.0, description="pinned cleaning CPU per raw token; default: fitted over the run's batches")
    # AWS data transfer out to the internet, first 10 TB per month: $0.09/GB (aws.amazon.com/s3/pricing).
    usd_per_raw_gb: float = Field(0.09, ge=0.0, description="buying, crawling or egress of raw input, per GB read")
    # Amazon S3 Standard, first 50 TB per month, us-east-1: $0.023 per GB-month (aws.amazon.com/s3/pricing).
    usd_per_gb_month: float = Field(0.023, ge=0.0, description="storage of kept data, per GB and month")
    storage_months: float = Field(12.0, ge=0.0, description="months the kept data is stored")


class ValueConfig(Strict):
    """What a unique token is worth: the training plan, the scaling law and the price of training compute
    (pipeline/value.py)."""

    law: Literal["chinchilla", "besiroglu", "muennighoff"] = Field(
        "muennighoff", description="scaling law (pipeline/scaling.py); muennighoff accounts for repeated tokens")
    plan: Literal["fixed", "fixed-params", "compute-optimal"] = Field(
        "fixed", description="fixed: params and tokens as given; fixed-params: params fixed, only longer training "
        "substitutes for data; compute-optimal: the best split of `compute` for every pool size")
    params: float = Field(1e9, gt=0, description="target model size N (parameters)")
    # 20 tokens per parameter: the compute-optimal ratio of Hoffmann et al. 2022.
    tokens: float = Field(20e9, gt=0, description="training token budget D")
    compute: float | None = Field(None, gt=0, description="training compute C in FLOPs (compute-optimal plan); "
                                  "default 6 * params * tokens")
    training_runs: int = Field(1, ge=1, description="training runs that will use this data; value is per run x this")
    # Muennighoff et al. 2023: up to ~4 epochs of repeated data cost little loss against unique data.
    epochs: float = Field(4.0, ge=1, description="epochs over the unique pool accepted when sizing the target pool")
    sample_fraction: float = Field(1.0, gt=0, le=1, description="fraction of the raw pool this run's input is; "
                                   "values and the target pool are at pool scale")
    # o200k_base, the tokenizer the pipeline counts tokens with (pipeline/resources.py): n_vocab = 200,019.
    vocab_size: int = Field(200_019, ge=2, description="tokenizer vocabulary; a predicted loss above ln(vocab_size) "
                            "is worse than a uniform guess, outside the law")
    usd_per_gpu_hour: float = Field(2.0, gt=0, description="price of one GPU-hour")
    mfu: float = Field(0.4, gt=0, le=1, description="model FLOP utilisation of training")
    # NVIDIA H100 SXM dense BF16 peak, 989 TFLOP/s (H100 datasheet).
    peak_flops: float = Field(989e12, gt=0, description="peak FLOP/s of one GPU")
    extrapolate_batches: int = Field(10, ge=1, le=1000, description="future batches the report extrapolates")
    budget_usd: float | None = Field(None, gt=0, description="the report allocates this budget (pool-scale dollars) "
                                     "among the sources (corpusslim budget)")


class InputLimits(Strict):
    max_doc_chars: int = Field(1_000_000, ge=1, description="longer documents are rejected as input/too_long")
    # A worker holds ~600 MB of models and about 23 times a unit's text at its peak (bench/big_shards.py: 726 MB
    # for units of 5,000 sample documents, 1,152 MB for 20,000 = 24 MB of text): 10,000 documents or 32 MB of
    # text keep a worker under ~1.5 GB.
    chunk_rows: int | None = Field(10_000, ge=1, description="a Parquet file with more rows is cut into parts "
                                   "(row-group ranges) processed as separate tasks; null: never cut")
    chunk_mb: float | None = Field(32.0, gt=0, description="likewise, by MB of text (from the Parquet footer); "
                                   "JSON Lines files that may hold more are split into Parquet parts first")


class SourceSpec(Strict):
    """One data source: a name and the files it arrives as (pipeline/sources.py)."""

    name: str = Field(min_length=1, pattern=r"^[^/\\]+$", description="the source's name (no slashes)")
    input: str = Field(min_length=1, description="file, directory or glob of the source's files (or a URL)")


class RunConfig(Strict):
    input: str | None = Field(None, description="file, directory (searched at any depth) or glob of Parquet or JSON "
                              "Lines (.jsonl, .jsonl.gz, .jsonl.zst) files; they arrive in sorted relative-path order")
    input_format: Literal[FORMATS] = Field("auto", description="auto: by extension")
    text_column: str = Field("text", min_length=1, description="the input column holding the text")
    id_column: str = Field("id", min_length=1, description="the input column holding document ids (else "
                           "<file>:<row>)")
    output: str = Field(description="run directory: kept/, rejected/, stats.json, _manifest.json")
    output_format: Literal["parquet", "jsonl.gz"] = Field(
        "parquet", description="format of kept/, rejected/ and removed_lines/ (jsonl.gz: Dolma-style documents)")
    annotations: Literal["all"] | list[str] = Field(
        "all", description="annotation columns written to kept/ and rejected/ (input columns are always kept)")
    keep_index: bool = Field(True, description="keep dedup's index/ for later --against runs")
    workers: int | None = Field(None, ge=1, description="local Dask worker processes; default: the CPU count")
    batch_shards: int = Field(1, ge=1, description="consecutive shards that form one batch of the ledger")
    batch_tokens: float | None = Field(None, gt=0, description="instead: a batch closes at the first unit boundary "
                                       "at or past this many raw tokens")
    batch_docs: int | None = Field(None, ge=1, description="instead: ... at or past this many raw documents")
    sources: list[SourceSpec] | None = Field(None, min_length=1, description="named sources, each a glob; their "
                                             "units interleave round-robin (pipeline/sources.py); replaces input")
    source_column: str | None = Field(None, min_length=1, description="or: the input column naming each "
                                      "document's source")
    on_bad_shard: Literal["quarantine", "fail"] = Field(
        "quarantine", description="unreadable input shard: record it and finish the rest, or stop the job")
    on_duplicate_id: Literal["report", "fail", "suffix"] = Field(
        "report", description="an id on more than one input row: report it (count and examples, with dedup), "
        "stop before writing anything, or give later occurrences (arrival order) the suffix #2, #3, ...")
    limits: InputLimits = InputLimits()
    cost: CostConfig = CostConfig()
    value: ValueConfig = ValueConfig()
    stages: list[StageConfigs] = Field(min_length=1)

    @model_validator(mode="after")
    def _stage_order(self) -> RunConfig:
        seen: list[str] = []
        kinds = [s.kind for s in self.stages]
        for i, stage in enumerate(self.stages):
            if stage.kind in seen:
                raise ValueError(f"stages[{i}]: stage kind {stage.kind!r} appears more than once")
            missing = [k for k in STAGES[stage.kind].requires if k not in seen]
            if missing:
                raise ValueError(f"stages[{i}]: {stage.kind!r} needs {', '.join(missing)} earlier in the list")
            late = [k for k in STAGES[stage.kind].after if k in kinds[i + 1:]]
            if late:
                raise ValueError(f"stages[{i}]: {stage.kind!r} must come after {', '.join(late)}")
            if STAGES[stage.kind].is_global and any(STAGES[k].is_global for k in seen):
                raise ValueError(f"stages[{i}]: only one global stage per run")
            seen.append(stage.kind)
        return self

    @model_validator(mode="after")
    def _sources(self) -> RunConfig:
        if (self.input is None) == (self.sources is None):
            raise ValueError("give exactly one of input and sources")
        if self.sources is not None and self.source_column is not None:
            raise ValueError("sources and source_column exclude each other (sources sets the column 'source')")
        names = [s.name for s in self.sources or []]
        if len(set(names)) < len(names):
            raise ValueError(f"sources: names must be unique, got {', '.join(names)}")
        sized = [k for k in ("batch_shards", "batch_tokens", "batch_docs") if k in self.model_fields_set
                 and getattr(self, k) is not None]
        if len(sized) > 1:
            raise ValueError(f"give one of batch_shards, batch_tokens and batch_docs, not {' and '.join(sized)}")
        return self

    @model_validator(mode="after")
    def _annotations(self) -> RunConfig:
        if self.annotations == "all":
            return self
        added = self.annotation_columns()
        unknown = sorted(set(self.annotations) - added)
        if unknown:
            raise ValueError(f"annotations: {', '.join(unknown)} is added by no configured stage "
                             f"(the stages add: {', '.join(sorted(added))})")
        kinds = {s.kind for s in self.stages}
        if self.keep_index and {"segment", "dedup"} <= kinds and "seg" not in self.annotations:
            raise ValueError("annotations: keep seg while keep_index is on (a later --against run verifies its "
                             "Chinese duplicates on these words), or set keep_index: false")
        return self

    def annotation_columns(self) -> set[str]:
        """Every annotation column the input step and the configured stages add."""
        return {"n_tokens", *(c for s in self.stages for c in STAGES[s.kind].columns)}

    def dropped_annotations(self) -> tuple[str, ...]:
        """The annotation columns that ``annotations`` leaves out of the outputs."""
        return () if self.annotations == "all" else tuple(sorted(self.annotation_columns() - set(self.annotations)))

    def config_hash(self) -> str:
        """Hash of everything that decides the output (not where it goes, how many workers compute it, nor the
        prices and model the report values it with)."""
        payload = self.model_dump(mode="json", exclude={"output", "workers", "value", "cost"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _key_path(loc: tuple) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif i >= 2 and loc[0] == "stages" and isinstance(loc[i - 1], int) and part in STAGES:
            continue  # pydantic inserts the discriminator value; the user's key path does not have it
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def parse_config(data: object, source: str = "config", base: str = ".") -> RunConfig:
    """Validate a mapping into a RunConfig; on error, one message naming each bad key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        return RunConfig.model_validate(data, context={"base": base})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            lines.append(f"{_key_path(err['loc'])}: {msg}" if err["loc"] else msg)
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


PATH_KEYS = ("input", "output")


def resolve_path(value: str, base: Path) -> str:
    """An absolute local path (or a URL, untouched) for a path given relative to ``base``."""
    return value if "://" in value else os.path.normpath(base / Path(value).expanduser())


def load_config(path: str | Path, overrides: dict | None = None) -> RunConfig:
    """Read YAML safely (no object construction), apply CLI overrides, validate, resolve paths."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = dict(data)
        base = path.resolve().parent
        for key in PATH_KEYS:
            if isinstance(data.get(key), str):
                data[key] = resolve_path(data[key], base)
        if isinstance(data.get("sources"), list):
            data["sources"] = [{**s, "input": resolve_path(s["input"], base)} if isinstance(s, dict) and isinstance(
                s.get("input"), str) else s for s in data["sources"]]
        for key, value in (overrides or {}).items():
            if value is not None:
                data[key] = resolve_path(str(value), Path.cwd()) if key in PATH_KEYS else value
    return parse_config(data, str(path), str(path.resolve().parent))
