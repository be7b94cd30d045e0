"""Marginal-yield benchmark: does the yield curve see duplicates rise, and does it extrapolate? (issue 5)

    python bench/marginal_curve.py            # 24 batches x 2,000 documents, ramp + control (~5 min on 2 cores)
    python bench/marginal_curve.py --quick    # 8 batches x 300 documents (smoke run, ~1 min)
    python bench/marginal_curve.py --reuse-runs   # re-analyse the last runs without rerunning them

Writes ``bench/results/marginal_curve.json`` (every number) and ``bench/results/marginal_curve.md`` (the tables,
also printed); ``--quick`` writes them under ``<work-dir>/quick/`` instead, leaving bench/results alone.
Generated corpora and run directories go
under ``--work-dir`` (default /tmp/corpusslim-bench/marginal). Data: ``../shared/data/corpus`` (``--data-dir``),
else ``sample_data/``.

Corpora (one Parquet shard per batch; ``batch_shards: 1``)
----------------------------------------------------------
Each batch b of ``--batches`` B has ``--docs`` documents: a fraction f(b) of them are copies of documents of
earlier batches (batch 0: of earlier documents of batch 0), the rest are fresh.

* **ramp**: f(b) rises linearly from ``--f-start`` (5 %) to ``--f-end`` (70 %), so later batches carry more
  duplicates; **control**: f(b) = ``--f-control`` (default: the ramp's mean, 37.5 %) in every batch, so
  U(R) should be a straight line (gamma ~ 1, flat marginal yield).
* **Fresh** documents: real documents of the six corpus files (en_bbc_news, en_abc_news, en_webtext, zh_wiki,
  zh_hotel_reviews, zh_web_pages), shuffled, each used once. There are only ~15.9k of them, fewer than the fresh
  slots, so the rest are *remixes*: a template document drawn at random gives the source and the number of
  sentences k (clipped to [2, 80]); the remix is k sentences of that source taken from a shuffled, cycled pool of
  its distinct sentences (two remixes share whole documents' worth of sentences with negligible probability, so
  they stay unique for a Jaccard-0.8 dedup). Real and remixed documents are interleaved evenly over all fresh
  slots, so every batch's fresh documents have the same mix (and so the same length and quality-pass rates):
  only the duplicate fraction changes from batch to batch. (A "lightly perturbed" copy of a used document
  would *not* stay unique: it is a near duplicate by construction, which is what the dedup stage removes.)
* **Copies**: of a uniformly random *fresh* document of an earlier batch; half exact (white space changed, same
  normalised text), half near (scattered word replacements / deletions / insertions on words -- jieba words for
  Chinese -- aimed at an exact shingle Jaccard drawn from [0.88, 0.98], as the dedup stage shingles them: word
  5-grams, jieba-word 5-grams; a near copy measuring below 0.85, or of a document with fewer than 40 editable
  words, is replaced by an exact copy). Columns: ``id, text, source, kind`` (real, remix, exact, near),
  ``origin`` (id of the copied document), ``planted_jaccard``.

The pipeline (``corpusslim run``, ``--workers`` 2, stages lid -> segment -> dedup -> quality by default, or
``--stages lid,dedup``) runs on each corpus; its ``ledger.parquet`` and ``report/summary.json`` are read.

Measurements
------------
1. The run's own report: fitted model, gamma (power-law exponent, whichever model was chosen), dU/dR at the last
   batch with its 90 % band, dU/dC, stopping point and recommendation, under the ``value:`` scenario below; the
   same ledger is also priced under a few other scenarios (the value section does not change the run).
2. Prefix fits: ``corpusslim.tracker.curve.fit_yield_curve`` on the first 6, 9, 12, ... batches; dU/dR at each prefix's
   last R, next to the batch's observed yield (new unique tokens / raw tokens of that batch and the mean over the
   prefix's last 3 batches) and the ground truth: the share of the batch's raw tokens in fresh documents
   (before quality filtering) and in fresh documents the pipeline kept (what a perfect dedup would add).
3. Extrapolation: fit on the first half of the batches; predict cumulative U for the second half
   (a) with ``corpusslim.tracker.curve.extrapolate`` and the first half's mean raw tokens and cost per batch (a true
   forecast: nothing of the second half is used), (b) with the fitted curve evaluated at the second half's
   *actual* R, anchored like ``extrapolate`` (U_h + f(R_i) - f(R_h)): the curve's error alone. Errors are
   relative, (predicted - actual) / actual, on cumulative U per batch and at the end, and on the second half's
   own unique tokens (U_end - U_h), the stricter measure (the anchored first half does not dilute it).
4. The control corpus, measured the same way.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from corpus import EN_SOURCES, ZH_SOURCES, Shingler, Sources, _edit, _editable, _expected_amount, _tokens  # noqa: E402

from corpusslim.filters.minhash import DEFAULT_N, jaccard  # noqa: E402
from corpusslim.tracker.curve import MODELS, extrapolate, fit_yield_curve, model_curve  # noqa: E402
from corpusslim.tracker.value import format_usd  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEFAULT_WORK = Path("/tmp/corpusslim-bench/marginal")
# configs/sample.yaml's scenario: each run a 1e-5 sample of a crawl, a compute-optimal 7B-scale budget.
DEFAULT_VALUE = {"law": "muennighoff", "plan": "compute-optimal", "compute": 5.88e21, "sample_fraction": 1e-5}

_EN_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_ZH_SENT = re.compile(r"(?<=[。！？])|\n+")
JOINER = {"en_bbc_news": " ", "en_abc_news": " ", "en_webtext": "\n", "zh_wiki": "", "zh_hotel_reviews": "",
          "zh_web_pages": "\n"}
FRESH = ("real", "remix")
COPIES = ("exact", "near")


def lang_of(source: str) -> str:
    return "zh" if source.startswith("zh") else "en"


def sentences(text: str, source: str) -> list[str]:
    pattern = _ZH_SENT if lang_of(source) == "zh" else _EN_SENT
    return [s.strip() for s in pattern.split(text) if s and s.strip()]


def schedule(kind: str, batches: int, f_start: float, f_end: float, f_control: float) -> list[float]:
    if kind == "control":
        return [f_control] * batches
    return [f_start + (f_end - f_start) * b / max(1, batches - 1) for b in range(batches)]


# ------------------------------------------------------------------------------------------------ corpus
class FreshPool:
    """Fresh documents in a fixed order: real documents (each once) interleaved evenly with remixes."""

    def __init__(self, sources: Sources, total: int, seed: int):
        rng = random.Random(seed)
        self.rng = rng
        self.real = [(src, doc_id, text) for src in (*EN_SOURCES, *ZH_SOURCES) for doc_id, text in sources.docs(src)
                     if text and text.strip()]
        rng.shuffle(self.real)
        self.templates = [(src, len(sentences(text, src))) for src, _, text in self.real]
        self.pools: dict[str, list[str]] = {}
        for src in (*EN_SOURCES, *ZH_SOURCES):
            seen: dict[str, None] = {}
            for _, text in sources.docs(src):
                for s in sentences(text, src):
                    seen.setdefault(s, None)
            pool = list(seen)
            rng.shuffle(pool)
            self.pools[src] = pool
        self.cursor = {src: 0 for src in self.pools}
        self.total = total
        self.n_real = min(len(self.real), total)
        self.j = 0
        self.used_real = 0
        self.remixes = 0
        self.cycles = {src: 0 for src in self.pools}

    def _remix(self) -> tuple[str, str, str]:
        src, k = self.rng.choice(self.templates)
        k = min(80, max(2, k))
        pool = self.pools[src]
        parts = []
        for _ in range(k):
            if self.cursor[src] >= len(pool):
                self.rng.shuffle(pool)
                self.cursor[src] = 0
                self.cycles[src] += 1
            parts.append(pool[self.cursor[src]])
            self.cursor[src] += 1
        self.remixes += 1
        return src, f"remix/{src}/{self.remixes:06d}", JOINER[src].join(parts)

    def next(self) -> tuple[str, str, str, str]:
        """(kind, source, id, text)."""
        j, self.j = self.j, self.j + 1
        if (j + 1) * self.n_real // self.total > j * self.n_real // self.total and self.used_real < len(self.real):
            src, doc_id, text = self.real[self.used_real]
            self.used_real += 1
            return "real", src, f"real/{doc_id}", text
        return ("remix", *self._remix())


def _exact_variant(text: str, rng: random.Random) -> str:
    """Same normalised text (NFKC, casefold, white space collapsed), different bytes; case is left alone so the
    copy's language ID is the original's."""
    variants = [lambda t: "  " + t.replace(" ", "  ") + "\n", lambda t: t.replace("\n", " \n ") + " ",
                lambda t: "\t" + t + "\n\n"]
    return rng.choice(variants)(text)


class Copier:
    """Exact and near copies with their exact shingle Jaccard to the original (the dedup stage's shingles)."""

    def __init__(self, seed: int, vocab_docs: list[tuple[str, str]], min_words: int = 40, accept: float = 0.85,
                 target: tuple[float, float] = (0.88, 0.98)):
        self.rng = random.Random(seed)
        self.shingler = Shingler()
        self.min_words, self.accept, self.target = min_words, accept, target
        self.vocab: dict[str, list[str]] = {"en": [], "zh": []}
        for src, text in vocab_docs:
            lang = lang_of(src)
            toks, _ = _tokens(text, lang, self.shingler)
            self.vocab[lang] += [toks[i] for i in _editable(toks)]
        self.cache: dict[str, tuple[list[str], set[str]]] = {}
        self.stats = {"exact": 0, "near": 0, "near_fallback_short": 0, "near_fallback_low_j": 0}

    def copy(self, doc_id: str, text: str, source: str, near: bool) -> tuple[str, str, float]:
        """(kind, text, planted Jaccard)."""
        if near:
            lang = lang_of(source)
            if doc_id not in self.cache:
                toks, _ = _tokens(text, lang, self.shingler)
                self.cache[doc_id] = (toks, self.shingler.set(text, lang))
            toks, src_set = self.cache[doc_id]
            if len(_editable(toks)) < self.min_words or not src_set:
                self.stats["near_fallback_short"] += 1
            else:
                target = self.rng.uniform(*self.target)
                amount = _expected_amount(target, "scatter", DEFAULT_N)
                new = "".join(_edit(toks, lang, amount, "scatter", self.vocab[lang], [], self.rng))
                j = jaccard(src_set, self.shingler.set(new, lang))
                if j >= self.accept and new != text:
                    self.stats["near"] += 1
                    return "near", new, j
                self.stats["near_fallback_low_j"] += 1
        self.stats["exact"] += 1
        return "exact", _exact_variant(text, self.rng), 1.0


def build_corpus(sources: Sources, out_dir: Path, fractions: list[float], docs_per_batch: int, seed: int,
                 near_share: float, log) -> dict:
    """Write one shard per batch (``shard-000.parquet`` ...) and return what was planted."""
    rng = random.Random(seed)
    n_dup = [round(f * docs_per_batch) for f in fractions]
    n_fresh = [docs_per_batch - d for d in n_dup]
    fresh = FreshPool(sources, sum(n_fresh), seed)
    vocab_docs = [(src, text) for src, _, text in random.Random(seed + 1).sample(fresh.real, min(600, len(fresh.real)))]
    copier = Copier(seed + 2, vocab_docs)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    originals: list[tuple[str, str, str]] = []   # (id, text, source) of fresh documents of earlier batches
    per_batch = []
    started = time.perf_counter()
    for b, (nd, nf) in enumerate(zip(n_dup, n_fresh)):
        slots = ["fresh"] * nf + ["dup"] * nd
        rng.shuffle(slots)
        if b == 0 and slots and slots[0] == "dup":  # batch 0 copies from itself: start with a fresh document
            i = slots.index("fresh")
            slots[0], slots[i] = slots[i], slots[0]
        rows = {"id": [], "text": [], "source": [], "kind": [], "origin": [], "planted_jaccard": []}
        this_batch: list[tuple[str, str, str]] = []
        counts = {"real": 0, "remix": 0, "exact": 0, "near": 0}
        chars = {"real": 0, "remix": 0, "exact": 0, "near": 0}
        for slot in slots:
            if slot == "fresh":
                kind, src, doc_id, text = fresh.next()
                this_batch.append((doc_id, text, src))
                origin, pj = doc_id, None
            else:
                pool = originals if b > 0 else this_batch
                o_id, o_text, src = pool[rng.randrange(len(pool))]
                kind, text, pj = copier.copy(o_id, o_text, src, rng.random() < near_share)
                doc_id, origin = f"{kind}/b{b:03d}/{len(rows['id']):05d}", o_id
            counts[kind] += 1
            chars[kind] += len(text)
            for key, value in zip(rows, (doc_id, text, src, kind, origin, pj)):
                rows[key].append(value)
        originals += this_batch
        pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String, "source": pl.String, "kind": pl.String,
                                   "origin": pl.String, "planted_jaccard": pl.Float64}
                     ).write_parquet(out_dir / f"shard-{b:03d}.parquet")
        per_batch.append({"batch": b, "dup_fraction": fractions[b], "docs": counts, "chars": chars,
                          "near_j": [j for k, j in zip(rows["kind"], rows["planted_jaccard"]) if k == "near"]})
    js = sorted(pj for r in per_batch for pj in r.pop("near_j"))
    near_j = ({"n": len(js), "min": round(js[0], 3), "median": round(js[len(js) // 2], 3), "max": round(js[-1], 3)}
              if js else None)
    log(f"  corpus {out_dir}: {len(fractions)} shards x {docs_per_batch} docs in "
        f"{time.perf_counter() - started:.1f} s (real {fresh.used_real}, remix {fresh.remixes}, copies {copier.stats})")
    return {"dir": str(out_dir), "batches": len(fractions), "docs_per_batch": docs_per_batch, "seed": seed,
            "fresh_real": fresh.used_real, "fresh_remix": fresh.remixes, "real_available": len(fresh.real),
            "sentence_pool": {k: len(v) for k, v in fresh.pools.items()}, "pool_cycles": fresh.cycles,
            "copies": copier.stats, "near_jaccard": near_j, "per_batch": per_batch}


# ------------------------------------------------------------------------------------------------ run
STAGE_YAML = {
    "lid": "  - kind: lid\n    languages: [en, zh]\n    min_score: 0.65\n    langdetect_below: 0.4\n",
    "segment": "  - kind: segment\n    hmm: false\n",
    "dedup": "  - kind: dedup\n    threshold: 0.8\n    verify: signature\n",
    "quality": "  - kind: quality\n",
}


def write_config(path: Path, corpus_dir: Path, run_dir: Path, stages: list[str], value: dict, workers: int) -> None:
    text = (f"input: {corpus_dir}\noutput: {run_dir}\nworkers: {workers}\nbatch_shards: 1\n"
            f"on_bad_shard: fail\nstages:\n" + "".join(STAGE_YAML[s] for s in stages)
            + "value:\n" + "".join(f"  {k}: {v}\n" for k, v in value.items()))
    path.write_text(text)


def run_pipeline(config: Path, run_dir: Path, log) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [str(Path(sys.executable).with_name("corpusslim")), "run", str(config)]
    if not Path(cmd[0]).exists():
        cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(config)]
    log(f"  $ {' '.join(cmd)}")
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (run_dir.parent / "run.out").write_text(proc.stdout)
    (run_dir.parent / "run.err").write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"corpusslim run failed ({proc.returncode}); see {run_dir.parent}/run.err:\n"
                         f"{proc.stderr[-3000:]}")
    log(f"  done in {wall:.1f} s wall")
    return {"command": " ".join(cmd), "wall_seconds": round(wall, 2), "stdout_tail": proc.stdout.strip()[-1500:]}


def truth_by_batch(run_dir: Path) -> pl.DataFrame:
    """Per batch, from the run's outputs and the planted ``kind`` column: raw tokens by kind, fresh tokens kept,
    planted copies kept (missed by dedup), fresh documents rejected by dedup."""
    frames = []
    for sub in ("kept", "rejected"):
        for path in sorted((run_dir / sub).glob("*.parquet")):
            cols = ["kind", "n_tokens"] + (["reject_stage"] if sub == "rejected" else [])
            df = pl.read_parquet(path, columns=cols)
            if sub == "kept":
                df = df.with_columns(reject_stage=pl.lit(None, dtype=pl.String))
            frames.append(df.with_columns(batch=pl.lit(int(path.stem.split("-")[-1])), kept=pl.lit(sub == "kept")))
    df = pl.concat(frames, how="vertical_relaxed").with_columns(pl.col("n_tokens").fill_null(0))
    fresh = pl.col("kind").is_in(FRESH)
    return df.group_by("batch").agg(
        tokens=pl.col("n_tokens").sum(),
        fresh_tokens=pl.col("n_tokens").filter(fresh).sum(),
        fresh_kept_tokens=pl.col("n_tokens").filter(fresh & pl.col("kept")).sum(),
        kept_tokens=pl.col("n_tokens").filter(pl.col("kept")).sum(),
        copies=(~fresh).sum(),
        copies_kept=(~fresh & pl.col("kept")).sum(),
        copies_kept_tokens=pl.col("n_tokens").filter(~fresh & pl.col("kept")).sum(),
        fresh_docs=fresh.sum(),
        fresh_dedup_rejected=(fresh & (pl.col("reject_stage") == "dedup")).sum(),
    ).sort("batch")


def fresh_dedup_audit(run_dir: Path, sample: int = 200, seed: int = 0) -> dict:
    """Fresh (not planted) documents the dedup removed: by source and reason, and on a random sample the exact
    shingle Jaccard (the stage's shingles) to the document ``dup_of`` names: >= 0.8 is a true duplicate already in
    the source data (or a remix overlapping a short document), < 0.8 a false positive of the signature check."""
    cols = ["id", "text", "source", "kind", "dup_of", "reject_stage", "reject_reason"]
    rej = pl.concat([pl.read_parquet(p, columns=cols) for p in sorted((run_dir / "rejected").glob("*.parquet"))])
    docs = pl.concat([pl.read_parquet(p, columns=["id", "text"]) for sub in ("kept", "rejected")
                      for p in sorted((run_dir / sub).glob("*.parquet"))])
    removed = rej.filter(pl.col("kind").is_in(FRESH) & (pl.col("reject_stage") == "dedup"))
    by = removed.group_by("kind", "source", "reject_reason").len().sort("len", descending=True).to_dicts()
    rows = removed.join(docs.rename({"id": "dup_of", "text": "dup_text"}), on="dup_of", how="left").to_dicts()
    random.Random(seed).shuffle(rows)
    shingler = Shingler()
    js = []
    for r in rows[:sample]:
        lang = lang_of(r["source"])
        js.append(jaccard(shingler.set(r["text"], lang), shingler.set(r["dup_text"] or "", lang)))
    return {"removed": removed.height, "by": by, "sampled": len(js),
            "sample_true_dup": sum(j >= 0.8 for j in js), "sample_below_threshold": sum(j < 0.8 for j in js),
            "sample_min_jaccard": round(min(js), 3) if js else None}


# ------------------------------------------------------------------------------------------------ analysis
def _f(x, digits=4):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:,.{digits}g}" if abs(x) >= 1000 else f"{x:.{digits}g}"


def _pct(x, digits=1):
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.{digits}f} %"


def _share(x, digits=1):
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def prefix_fits(R, U, C, ledger: pl.DataFrame, truth: pl.DataFrame, fractions: list[float], step: int,
                first: int) -> list[dict]:
    n = len(R)
    ends = list(range(first, n + 1, step))
    if ends[-1] != n:
        ends.append(n)
    raw = ledger["raw_tokens"].cast(pl.Float64).to_numpy()
    new = ledger["new_unique_tokens"].cast(pl.Float64).to_numpy()
    tr = {r["batch"]: r for r in truth.to_dicts()}
    out = []
    for p in ends:
        fit = fit_yield_curve(R[:p], U[:p], C[:p], seed=0)
        last = p - 1
        w = slice(max(0, p - 3), p)
        pw = fit.fits.get("power_law")
        out.append({
            "batches": p, "R": float(R[last]), "model": fit.model, "gamma": fit.gamma,
            "marginal_yield": fit.marginal_yield, "band": list(fit.marginal_yield_band),
            "marginal_per_usd": fit.marginal_per_usd,
            "power_law_marginal": pw["K"] * pw["gamma"] * float(R[last]) ** (pw["gamma"] - 1) if pw else None,
            "holdout_error": fit.holdout_error,
            "planned_dup_fraction": fractions[last],
            "observed_yield_last": float(new[last] / raw[last]),
            "observed_yield_last3": float(new[w].sum() / raw[w].sum()),
            "true_fresh_share_last": tr[last]["fresh_tokens"] / tr[last]["tokens"],
            "true_fresh_kept_share_last": tr[last]["fresh_kept_tokens"] / tr[last]["tokens"],
            "true_fresh_kept_share_last3": sum(tr[i]["fresh_kept_tokens"] for i in range(w.start, p))
            / sum(tr[i]["tokens"] for i in range(w.start, p)),
            "notes": fit.notes,
        })
    return out


def extrapolation_check(R, U, C) -> dict:
    n = len(R)
    h = n // 2
    fit = fit_yield_curve(R[:h], U[:h], C[:h], seed=0)
    dR, dC = np.diff(R, prepend=0.0), np.diff(C, prepend=0.0)
    raw_pb, cost_pb = float(dR[:h].mean()), float(dC[:h].mean())
    fut = extrapolate(fit, R[:h], U[:h], C[:h], k=n - h, raw_per_batch=raw_pb, cost_per_batch=cost_pb)
    a = h - 1
    actual = U[h:]
    models = {}
    for model in MODELS:
        p = fit.fits.get(model)
        if p is None:
            continue
        models[model] = U[a] + model_curve(model, p, R[h:]) - model_curve(model, p, R[a])
    chosen = models[fit.model]
    curves = fit.curves.cumulative(np.r_[R[a], R[h:]])[1:] if fit.curves is not None else np.empty((0, n - h + 1))
    boot = U[a] + curves[:, 1:] - curves[:, :1]         # every bootstrap curve (model re-chosen), anchored at U[a]
    lo, hi = (np.percentile(boot, [5, 95], axis=0) if len(boot) else (chosen, chosen))
    rows = []
    for i in range(n - h):
        rows.append({
            "batch": h + i, "R_actual": float(R[h + i]), "U_actual": float(actual[i]),
            "R_forecast": fut[i]["raw_tokens"], "U_forecast": fut[i]["unique_tokens"],
            "err_forecast": fut[i]["unique_tokens"] / actual[i] - 1,
            "U_at_actual_R": float(chosen[i]), "err_at_actual_R": float(chosen[i] / actual[i] - 1),
            "band": [float(lo[i]), float(hi[i])], "in_band": bool(lo[i] <= actual[i] <= hi[i]),
            "err_by_model": {m: float(v[i] / actual[i] - 1) for m, v in models.items()},
        })
    second_actual = float(U[-1] - U[a])

    def second(pred_end):
        return float((pred_end - U[a]) / second_actual - 1) if second_actual > 0 else math.nan

    return {
        "train_batches": h, "predicted_batches": n - h, "model": fit.model, "gamma": fit.gamma,
        "params": fit.params, "holdout_error": fit.holdout_error, "raw_per_batch_first_half": raw_pb,
        "raw_per_batch_second_half": float(dR[h:].mean()), "cost_per_batch_first_half": cost_pb,
        "rows": rows,
        "end": {
            "U_actual": float(U[-1]), "U_forecast": fut[-1]["unique_tokens"],
            "err_forecast": rows[-1]["err_forecast"], "U_at_actual_R": rows[-1]["U_at_actual_R"],
            "err_at_actual_R": rows[-1]["err_at_actual_R"],
            "err_by_model": rows[-1]["err_by_model"],
            "mean_abs_err_forecast": float(np.mean([abs(r["err_forecast"]) for r in rows])),
            "mean_abs_err_at_actual_R": float(np.mean([abs(r["err_at_actual_R"]) for r in rows])),
            "band_coverage": float(np.mean([r["in_band"] for r in rows])),
            "second_half_U_actual": second_actual,
            "second_half_err_forecast": second(fut[-1]["unique_tokens"]),
            "second_half_err_at_actual_R": second(chosen[-1]),
            "second_half_err_by_model": {m: second(v[-1]) for m, v in models.items()},
            "R_end_actual": float(R[-1]), "R_end_forecast": fut[-1]["raw_tokens"],
        },
    }


def value_scenarios(run_dir: Path, scenarios: list[dict]) -> list[dict]:
    """The run's summary re-priced under other ``value:`` settings (the value section is not part of the config
    hash: same run, other answer)."""
    from corpusslim.config import parse_config
    from corpusslim.tracker.decision import summarise
    from corpusslim.tracker.value import plan_compute, usd_per_flop

    cfg_json = json.loads((run_dir / "config.json").read_text())
    ledger = pl.read_parquet(run_dir / "ledger.parquet")
    stats = json.loads((run_dir / "stats.json").read_text())
    out = []
    for sc in scenarios:
        cfg = parse_config({**cfg_json, "value": sc}, "scenario")
        s = summarise(ledger, stats, cfg)
        vals = [(b["value_status"], b["value_usd"]) for b in s["batches"]]
        out.append({"value": sc, "stop": s["stop"], "headline": s["headline"],
                    "training_cost_usd": plan_compute(cfg.value) * usd_per_flop(cfg.value),
                    "value_batch_1": vals[1] if len(vals) > 1 else None, "value_last": vals[-1],
                    "cost_last": s["batches"][-1]["pool_cost_usd"]})
    return out


def analyse(name: str, run_dir: Path, corpus: dict, fractions: list[float], quick: bool,
            scenarios: list[dict]) -> dict:
    ledger = pl.read_parquet(run_dir / "ledger.parquet")
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    stats = json.loads((run_dir / "stats.json").read_text())
    truth = truth_by_batch(run_dir)
    R, U, C = (ledger[c].cast(pl.Float64).to_numpy() for c in ("cum_raw_tokens", "cum_unique_tokens", "cum_cost_usd"))
    tr = truth.to_dicts()
    batches = []
    for row, t in zip(ledger.to_dicts(), tr):
        batches.append({
            "batch": row["batch"], "planned_dup_fraction": fractions[row["batch"]], "raw_docs": row["raw_docs"],
            "raw_tokens": row["raw_tokens"], "new_unique_tokens": row["new_unique_tokens"],
            "observed_yield": row["new_unique_tokens"] / row["raw_tokens"],
            "true_fresh_share": t["fresh_tokens"] / t["tokens"],
            "true_fresh_kept_share": t["fresh_kept_tokens"] / t["tokens"],
            "copies": t["copies"], "copies_kept": t["copies_kept"], "copies_kept_tokens": t["copies_kept_tokens"],
            "fresh_docs": t["fresh_docs"], "fresh_dedup_rejected": t["fresh_dedup_rejected"],
            "tokens_check": t["tokens"] - row["raw_tokens"],
            "cpu_seconds": row["cpu_seconds"], "cost_usd": row["cost_usd"],
            "value_usd": summary["batches"][row["batch"]]["value_usd"],
            "value_status": summary["batches"][row["batch"]]["value_status"],
            "cum_raw_tokens": row["cum_raw_tokens"], "cum_unique_tokens": row["cum_unique_tokens"],
        })
    fit = fit_yield_curve(R, U, C, seed=0)
    return {
        "name": name, "corpus": corpus, "fractions": fractions,
        "stats_totals": stats["totals"], "memory_mb": stats.get("memory_mb"),
        "report": {k: summary[k] for k in ("curve", "stop", "headline", "next_batch", "value_assumptions",
                                           "cost_assumptions", "cost_basis")},
        "report_extrapolation_head": summary["extrapolation"][:3],
        "refit_matches_report": bool(fit.model == summary["curve"]["model"]
                                     and math.isclose(fit.marginal_yield, summary["curve"]["marginal_yield"],
                                                      rel_tol=1e-9)),
        "batches": batches,
        "prefixes": prefix_fits(R, U, C, ledger, truth, fractions, step=2 if quick else 3, first=4 if quick else 6),
        "extrapolation": extrapolation_check(R, U, C),
        "scenarios": value_scenarios(run_dir, scenarios),
        "fresh_dedup_audit": fresh_dedup_audit(run_dir),
    }


# ------------------------------------------------------------------------------------------------ report
def render(results: dict) -> str:
    meta = results["meta"]
    out = [f"# Marginal-yield curve benchmark (`{meta['command']}`)", "",
           f"{meta['date']} · {meta['cpus']} CPUs, CPython {meta['python']}, polars {meta['polars']} · data: "
           f"{meta['data']} · load average at start {meta['load_start']} · total wall {meta['wall_seconds']:.0f} s", "",
           f"Stages: {' → '.join(meta['stages'])}; `--workers {meta['workers']}`; one shard = one batch. "
           f"Value scenario of the runs: `{json.dumps(meta['value'])}` (see Assumptions).", ""]
    for res in results["corpora"]:
        name, rep, curve = res["name"], res["report"], res["report"]["curve"]
        corpus = res["corpus"]
        fr = res["fractions"]
        out += [f"## {name}: duplicate fraction {_share(fr[0], 0)} → {_share(fr[-1], 0)}", "",
                f"{corpus['batches']} batches × {corpus['docs_per_batch']:,} documents; fresh documents: "
                f"{corpus['fresh_real']:,} real (of {corpus['real_available']:,}) + {corpus['fresh_remix']:,} remixes; "
                f"copies: {corpus['copies']}. Run: {res['run']['wall_seconds']:.0f} s wall, "
                f"{res['stats_totals']['cpu_seconds']:.0f} CPU s, {res['stats_totals']['tokens_in']:,} raw tokens, "
                f"{res['stats_totals']['tokens_kept']:,} kept. Dedup against the planted truth: "
                f"{sum(b['copies_kept'] for b in res['batches']):,} of {sum(b['copies'] for b in res['batches']):,} "
                f"copies kept (missed), {sum(b['fresh_dedup_rejected'] for b in res['batches']):,} of "
                f"{sum(b['fresh_docs'] for b in res['batches']):,} fresh documents removed as duplicates; planted "
                f"near-copy Jaccard {corpus['near_jaccard']}; ledger raw tokens = Σ n_tokens of the outputs: "
                f"{all(b['tokens_check'] == 0 for b in res['batches'])}; refit of the ledger = report's fit: "
                f"{res['refit_matches_report']}.", "",
                "### The run's report (`report/summary.json`)", ""]
        band, uband = curve["marginal_yield_band"], curve["marginal_per_usd_band"]
        out += [table(["figure", "value"], [
            ["model chosen (hold-out error by model)",
             f"{curve['model']} ({', '.join(f'{k} {_share(v)}' for k, v in curve['holdout_error'].items())})"],
            ["parameters", ", ".join(f"{k}={_f(v)}" for k, v in curve["params"].items())],
            ["γ (power-law exponent)", _f(curve["gamma"])],
            ["dU/dR at the last batch (90 % band)", f"{_f(curve['marginal_yield'])} ({_f(band[0])} – {_f(band[1])})"],
            ["dU/dC, unique tokens per $ (90 % band)",
             f"{_f(curve['marginal_per_usd'])} ({_f(uband[0])} – {_f(uband[1])})"],
            ["observed yield of the last 3 batches (new unique / raw)",
             _f(sum(b["new_unique_tokens"] for b in res["batches"][-3:])
                / sum(b["raw_tokens"] for b in res["batches"][-3:]))],
            ["stop (more batches worth processing: point, 90 % range)", _stop(rep["stop"])],
            ["headline", rep["headline"]],
            ["notes", "; ".join(curve["notes"]) or "–"],
        ]), ""]
        out += ["### Ledger and ground truth per batch", "",
                "observed yield = new unique tokens / raw tokens of the batch; fresh share = share of the batch's "
                "raw tokens in fresh (not planted) documents; fresh kept = share in fresh documents the pipeline "
                "kept (differs from the observed yield only by planted copies the dedup missed: copies kept); "
                "fresh rm by dedup = fresh documents the dedup removed (audit below the table).", ""]
        out += [table(["batch", "planned dup", "raw docs", "raw tokens", "new unique", "observed yield", "fresh share",
                       "fresh kept", "copies kept", "fresh rm by dedup", "cost $", "value"],
                      [[b["batch"], _share(b["planned_dup_fraction"]), f"{b['raw_docs']:,}", f"{b['raw_tokens']:,}",
                        f"{b['new_unique_tokens']:,}", _f(b["observed_yield"], 3), _share(b["true_fresh_share"]),
                        _share(b["true_fresh_kept_share"]), f"{b['copies_kept']}/{b['copies']}",
                        f"{b['fresh_dedup_rejected']}/{b['fresh_docs']}", _f(b["cost_usd"], 3),
                        _worth((b["value_status"], b["value_usd"]))] for b in res["batches"]]), ""]
        au = res["fresh_dedup_audit"]
        out += [f"Fresh documents removed by dedup: {au['removed']:,} ("
                + ", ".join(f"{b['kind']} {b['source']} {b['reject_reason']} {b['len']}" for b in au["by"])
                + f"). On a random sample of {au['sampled']}, {au['sample_true_dup']} have exact shingle Jaccard "
                f">= 0.8 with the document `dup_of` names (duplicates already in the source data -- BBC's exact and "
                f"near pairs, repeated hotel replies -- or a remix sharing a long sentence with a short review), "
                f"{au['sample_below_threshold']} are below 0.8 (min {au['sample_min_jaccard']}: the signature "
                f"check's false positives, cf. bench/results/dedup.md). Their number grows with the batch index "
                f"because an earlier partner becomes more likely: a small duplicate ramp of the data itself.", ""]
        out += ["### Marginal yield on growing prefixes", "",
                "Each row fits `fit_yield_curve` on the first n batches only; dU/dR is the chosen model's at the "
                "prefix's last R (90 % band); the power-law column is K·γ·R^(γ−1) of the power-law fit at the same R.",
                ""]
        out += [table(["first n batches", "planned dup of batch n−1", "model", "γ", "dU/dR (band)", "dU/dR power law",
                       "observed yield batch n−1", "observed last 3", "fresh kept last 3 (truth)",
                       "fresh share batch n−1"],
                      [[p["batches"], _share(p["planned_dup_fraction"]), p["model"], _f(p["gamma"]),
                        f"{_f(p['marginal_yield'], 3)} ({_f(p['band'][0], 3)}–{_f(p['band'][1], 3)})",
                        _f(p["power_law_marginal"], 3), _f(p["observed_yield_last"], 3),
                        _f(p["observed_yield_last3"], 3), _f(p["true_fresh_kept_share_last3"], 3),
                        _f(p["true_fresh_share_last"], 3)] for p in res["prefixes"]]), ""]
        ex = res["extrapolation"]
        e = ex["end"]
        out += [f"### Extrapolation: fit on batches 0–{ex['train_batches'] - 1}, predict {ex['train_batches']}–"
                f"{ex['train_batches'] + ex['predicted_batches'] - 1}", "",
                f"Chosen on the first half: **{ex['model']}** (γ = {_f(ex['gamma'])}; hold-out errors "
                f"{', '.join(f'{k} {_share(v)}' for k, v in ex['holdout_error'].items())}). (a) forecast = "
                f"`extrapolate()` with the first half's mean raw tokens per batch "
                f"({ex['raw_per_batch_first_half']:,.0f}; "
                f"the second half's was {ex['raw_per_batch_second_half']:,.0f}); (b) the same curve at the actual R, "
                f"anchored at U of batch {ex['train_batches'] - 1}. Band: 5–95 % of the bootstrap curves at the "
                "actual R.", ""]
        out += [table(["batch", "U actual", "U forecast (a)", "error (a)", "U at actual R (b)", "error (b)",
                       "band (b)", "in band", *[f"error {m} (b)" for m in ex["rows"][0]["err_by_model"]]],
                      [[r["batch"], f"{r['U_actual']:,.0f}", f"{r['U_forecast']:,.0f}", _pct(r["err_forecast"], 2),
                        f"{r['U_at_actual_R']:,.0f}", _pct(r["err_at_actual_R"], 2),
                        f"{r['band'][0]:,.0f}–{r['band'][1]:,.0f}", "yes" if r["in_band"] else "no",
                        *[_pct(v, 2) for v in r["err_by_model"].values()]] for r in ex["rows"]]), ""]
        out += [table(["at the last batch", "(a) forecast", "(b) at actual R"], [
            ["cumulative U: relative error", _pct(e["err_forecast"], 2), _pct(e["err_at_actual_R"], 2)],
            ["cumulative U: mean |error| over the second half", _share(e["mean_abs_err_forecast"], 2),
             _share(e["mean_abs_err_at_actual_R"], 2)],
            [f"second half's unique tokens (actual {e['second_half_U_actual']:,.0f}): relative error",
             _pct(e["second_half_err_forecast"], 1), _pct(e["second_half_err_at_actual_R"], 1)],
            ["second half's unique tokens, each model at actual R", "–",
             ", ".join(f"{m} {_pct(v, 1)}" for m, v in e["second_half_err_by_model"].items())],
            ["actual inside the 90 % band", "–", _share(e["band_coverage"], 0) + " of batches"],
        ]), ""]
        if res["scenarios"]:
            out += ["### The same ledger under other `value:` scenarios", ""]
            out += ["Values and costs at pool scale. The last column is the plan's whole training compute bill at "
                    "the training price.", ""]
            out += [table(["value", "value of batch 1", "value of last batch", "full cost of last batch",
                           "stop (point, 90 % range)", "whole training run $"],
                          [[f"`{json.dumps(s['value'])}`", _worth(s["value_batch_1"]), _worth(s["value_last"]),
                            format_usd(s["cost_last"]), _stop(s["stop"]), _f(s["training_cost_usd"], 3)]
                           for s in res["scenarios"]]), ""]
    if results.get("notes"):
        out += ["## Notes", ""] + [f"* {n}" for n in results["notes"]] + [""]
    out += ["## Assumptions", ""] + [f"* {a}" for a in results["assumptions"]] + [""]
    return "\n".join(out)


def _worth(v) -> str:
    """A (status, usd) pair as a table cell."""
    if v is None:
        return "–"
    status, usd = v
    return format_usd(usd) if status == "priced" else {"outside_law": "outside the law"}.get(status, status)


def _stop(stop: dict) -> str:
    if "reason" in stop:
        return f"none: {stop['reason']}"
    plus = "+" if stop["beyond_horizon"] else ""           # the range reaches the search horizon
    return f"{stop['batches_more']}{plus if stop['batches_more'] >= stop['horizon'] else ''} " \
        f"({stop['low']}–{stop['high']}{plus})"


def notes(results: dict) -> list[str]:
    """Findings computed from the runs: the start-up cost of the first batches."""
    out = []
    for res in results["corpora"]:
        cpu = [b["cpu_seconds"] for b in res["batches"]]
        if len(cpu) >= 6:
            steady = sorted(cpu[2:])[len(cpu[2:]) // 2]
            out.append(f"{res['name']}: batches 0 and 1 cost {cpu[0]:.2f} and {cpu[1]:.2f} CPU s against a median "
                       f"{steady:.2f} for the others: each worker's first shard pays for loading the tokenizer, "
                       "fastText and jieba (cpu_s_input and cpu_s_segment in the ledger), which inflates the cost of "
                       "the first `workers` batches.")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 batches x 300 documents")
    ap.add_argument("--batches", type=int)
    ap.add_argument("--docs", type=int, help="documents per batch")
    ap.add_argument("--f-start", type=float, default=0.05)
    ap.add_argument("--f-end", type=float, default=0.70)
    ap.add_argument("--f-control", type=float, help="constant duplicate fraction of the control (default: ramp mean)")
    ap.add_argument("--near-share", type=float, default=0.5, help="share of copies that are near (vs exact)")
    ap.add_argument("--stages", default="lid,segment,dedup,quality")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--only", default="ramp,control")
    ap.add_argument("--value", type=json.loads, default=DEFAULT_VALUE, help="the runs' value: section (JSON)")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--reuse-runs", action="store_true",
                    help="re-analyse the finished runs under --work-dir instead of rebuilding and rerunning "
                         "(same arguments as the run; the value scenario of the report stays the run's)")
    args = ap.parse_args()
    batches = args.batches or (8 if args.quick else 24)
    docs = args.docs or (300 if args.quick else 2000)
    f_control = args.f_control if args.f_control is not None else (args.f_start + args.f_end) / 2
    stages = args.stages.split(",")
    value = args.value
    scenarios = [DEFAULT_VALUE, {**DEFAULT_VALUE, "sample_fraction": 1e-4},
                 {"law": "muennighoff", "plan": "fixed-params", "params": 7e9, "tokens": 1.4e11,
                  "sample_fraction": 1e-5},
                 {"law": "chinchilla", "plan": "fixed", "params": 1e9, "tokens": 2e10, "sample_fraction": 1e-5}]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    sources = Sources(args.data_dir)
    results = {"meta": {
        "command": "python bench/marginal_curve.py" + (" --quick" if args.quick else "")
        + "".join(f" {a}" for a in sys.argv[1:] if a != "--quick"),
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "python": platform.python_version(),
        "polars": pl.__version__, "data": sources.description, "load_start": load, "stages": stages,
        "workers": args.workers, "value": value, "batches": batches, "docs_per_batch": docs,
        "f_start": args.f_start, "f_end": args.f_end, "f_control": f_control, "near_share": args.near_share,
        "seed": args.seed}, "corpora": []}
    for name in args.only.split(","):
        fractions = schedule(name, batches, args.f_start, args.f_end, f_control)
        base = args.work_dir / ("quick" if args.quick else "full") / name
        if args.reuse_runs and (base / "run.json").exists() and (base / "run" / "ledger.parquet").exists():
            log(f"[{name}] re-analysing the finished run in {base / 'run'}")
            corpus = json.loads((base / "corpus.json").read_text())
            run = json.loads((base / "run.json").read_text())
        else:
            (base / "run.json").unlink(missing_ok=True)
            log(f"[{name}] building corpus")
            corpus = build_corpus(sources, base / "corpus", fractions, docs, args.seed, args.near_share, log)
            (base / "corpus.json").write_text(json.dumps(corpus))
            config = base / "config.yaml"
            write_config(config, base / "corpus", base / "run", stages, value, args.workers)
            log(f"[{name}] running the pipeline")
            run = run_pipeline(config, base / "run", log)
            (base / "run.json").write_text(json.dumps(run))
        res = analyse(name, base / "run", corpus, fractions, args.quick, scenarios)
        res["run"] = run
        results["corpora"].append(res)
    results["notes"] = notes(results)
    results["meta"]["wall_seconds"] = time.perf_counter() - started
    pool_text = ", ".join(f"{r['name']} {r['batches'][-1]['cum_unique_tokens'] / 1e6:.2f}M tokens"
                          for r in results["corpora"])
    results["assumptions"] = [
        f"Corpus: {batches} batches of {docs:,} documents; duplicate fraction f(b) {args.f_start:.0%} → "
        f"{args.f_end:.0%} "
        f"linear (ramp) or {f_control:.1%} constant (control); copies are {args.near_share:.0%} near / "
        f"{1 - args.near_share:.0%} exact of uniformly random fresh documents of earlier batches (batch 0: of itself).",
        "Fresh documents are real corpus documents, each used once, interleaved evenly with sentence remixes "
        "(there are fewer real documents than fresh slots); remixes keep the sources' mix of lengths and languages "
        "but are not real documents, so quality-filter pass rates are the remix's, not the web's.",
        "Observed yield counts what the pipeline keeps: fresh documents minus those lid/quality (and dedup, for "
        "the source data's own duplicates) reject, plus any planted copy the dedup misses; 'fresh kept' leaves "
        "out the missed copies (ground truth from the planted `kind` column).",
        f"Value: `{json.dumps(value)}`: the scenario of configs/sample.yaml, each run a 1e-5 sample of a crawl, "
        f"priced for a compute-optimal 7B-scale budget under Muennighoff et al. 2023 (pipeline/value.py). Final "
        f"unique pool of the runs (run scale): {pool_text}. Full cost per batch (pipeline/ledger.py): cleaning CPU "
        "at $0.0425 per CPU-hour (c5.24xlarge on-demand vCPU), egress $0.09/GB read, storage $0.023 per GB-month "
        "for 12 months; the scenario table re-prices the same ledger (`corpusslim.tracker.decision.summarise`).",
        "The ledger keeps each batch's measured CPU seconds (process time on the workers); the decision uses the "
        "median CPU cost per raw token over all batches, so one slow batch or a busier machine does not move it.",
        "Extrapolation (a) uses only the first half (its mean raw tokens and cost per batch); (b) uses the second "
        "half's actual R, so its error is the curve's alone.",
    ]
    out_dir = args.work_dir / "quick" if args.quick else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "marginal_curve.json").write_text(json.dumps(results, indent=1, default=str))
    md = render(results)
    (out_dir / "marginal_curve.md").write_text(md)
    print(md)
    log(f"wrote {out_dir}/marginal_curve.json and .md in {results['meta']['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
