"""Quality rules before and after issue 16 (line rules), per source, on real multi-line text; optional per-filter
agreement with datatrove.

    python bench/quality_rules.py                                   # ours only
    python bench/quality_rules.py --dt-python /work/dtvenv/bin/python   # + datatrove agreement (its own venv:
        python3 -m venv /work/dtvenv && /work/dtvenv/bin/pip install -r bench/requirements-datatrove.txt)

Corpus (every document multi-line, as published; language labels are the sources' own, no LID):

* ``../shared/data/corpus``: BBC news (paragraphs), ABC rural/science news (12-line chunks), NLTK webtext (15-line
  chunks; one source per sub-corpus: firefox bug titles, overheard, pirates/grail scripts, singles ads, wine notes),
  zh_wiki paragraphs, the 66 zh_web_pages (navigation included), zh hotel reviews;
* the SIGHAN PKU test text (People's Daily, ``../shared/data/cws/pku_test.utf8``) in 15-line chunks;
* **hard-wrapped prose**: the licence texts Debian ships in ``/usr/share/common-licenses`` (GPL, LGPL, GFDL, Apache,
  MPL, Artistic; wrapped at ~72 columns) in chunks of 6 paragraphs, and the KJV Genesis chunk of
  ``tests/fixtures/quality/en_hardwrapped.jsonl``.

Before = the rules at commit ``c9976b7`` (page rules only; C4's line rules as document fractions), read from git.
After = ``corpusslim.filters.lines`` (default config: the ``lines`` stage) then the page rules of
``corpusslim.filters.quality`` on the cleaned text. Chinese words: jieba (HMM off) on the text each side judges.
Tokens: o200k_base. Reconstruction: every document's original = kept lines + removed lines
(``corpusslim.runtime.lines.restore``); mismatches must be 0.

Datatrove (``--dt-python``; its filters run in that interpreter on the same English documents, each filter on the
raw text on its own, thresholds as ours: ``C4QualityFilter(filter_no_terminal_punct=False)`` as in FineWeb,
``FineWebQualityFilter(char_duplicates_ratio=0.1)`` as in the FineWeb paper): per filter, the share of documents
with the same keep/drop verdict, and the disagreements by class (our reason, datatrove's reason). For C4 the
comparison is ours = lines + C4 page rules, and for documents both keep, whether the kept lines are the same.

Results: ``bench/results/quality_rules.json`` and ``quality_rules.md`` (``--out-dir``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpusslim.filters.lines import LinesConfig, clean_lines  # noqa: E402
from corpusslim.filters.quality import RULES, QualityConfig, all_failures, document_stats  # noqa: E402
from corpusslim.runtime.lines import restore  # noqa: E402
from corpusslim.runtime.resources import count_tokens, segmenter  # noqa: E402

DATA = Path("/work/shared/data")
LICENCES = Path("/usr/share/common-licenses")
LICENCE_FILES = ("GPL-2", "GPL-3", "LGPL-2.1", "LGPL-3", "GFDL-1.3", "Apache-2.0", "MPL-2.0", "Artistic")
BEFORE_COMMIT = "c9976b7"
DEFAULT_OUT = REPO / "bench" / "results"
HARD_WRAPPED = ("licences", "kjv")
FAMILIES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def build_corpus() -> list[dict]:
    """Documents: id, source, lang, text."""
    docs = []
    for name, lang in (("en_bbc_news", "en"), ("en_abc_news", "en"), ("en_webtext", "en"),
                       ("zh_wiki", "zh"), ("zh_web_pages", "zh"), ("zh_hotel_reviews", "zh")):
        for d in _jsonl(DATA / "corpus" / f"{name}.jsonl"):
            source = f"webtext/{d['id'].split('/')[1]}" if name == "en_webtext" else name
            docs.append({"id": d["id"], "source": source, "lang": lang, "text": d["text"]})
    pku = (DATA / "cws" / "pku_test.utf8").read_text(encoding="utf-8").split("\n")
    for i in range(0, len(pku), 15):
        docs.append({"id": f"pku/{i // 15}", "source": "zh_pku_news", "lang": "zh", "text": "\n".join(pku[i:i + 15])})
    for name in LICENCE_FILES:
        path = LICENCES / name
        if path.exists():
            paras = path.read_text(encoding="utf-8").split("\n\n")
            for i in range(0, len(paras), 6):
                docs.append({"id": f"licence/{name}/{i // 6}", "source": "licences", "lang": "en",
                             "text": "\n\n".join(paras[i:i + 6])})
    for d in _jsonl(REPO / "tests" / "fixtures" / "quality" / "en_hardwrapped.jsonl"):
        if d["id"].startswith("kjv/"):
            docs.append({"id": d["id"], "source": "kjv", "lang": "en", "text": d["text"]})
    return docs


def old_rules():
    """filters/quality.py as it was before this issue (commit ``BEFORE_COMMIT``), as a module."""
    code = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE_COMMIT}:filters/quality.py"],
                          capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "quality_before.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("quality_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


def _segs(texts: list[str], langs: list[str]) -> list[str | None]:
    zh = [i for i, lang in enumerate(langs) if lang == "zh"]
    out: list[str | None] = [None] * len(texts)
    for i, seg in zip(zh, segmenter(False, None).segment([texts[i] for i in zh])):
        out[i] = seg
    return out


def judge(docs: list[dict]) -> list[dict]:
    """Per document: before/after verdicts, cleaned text, removed lines, tokens."""
    old = old_rules()
    old_cfg, cfg, lines_cfg = old.QualityConfig(), QualityConfig(), LinesConfig()
    texts, langs = [d["text"] for d in docs], [d["lang"] for d in docs]
    cleaned = [clean_lines(t, lang == "zh", lines_cfg) for t, lang in zip(texts, langs)]
    kept_texts = [k for k, _ in cleaned]
    raw_segs, kept_segs = _segs(texts, langs), _segs(kept_texts, langs)
    raw_tokens, kept_tokens = count_tokens(texts), count_tokens(kept_texts)
    removed_texts = [line for _, removed in cleaned for _, line, _ in removed]
    removed_tokens = iter(count_tokens(removed_texts))
    out = []
    for d, (kept, removed), rs, ks, rt, kt in zip(docs, cleaned, raw_segs, kept_segs, raw_tokens, kept_tokens):
        before = old.all_failures(old.document_stats(d["text"], d["lang"], rs), d["lang"], old_cfg)
        after = all_failures(document_stats(kept, d["lang"], ks), d["lang"], cfg)
        restored = restore(kept, [{"line": i, "text": t, "reason": r, "stage": "lines"} for i, t, r in removed])
        out.append({**d, "kept_text": kept, "before": before, "after": after, "tokens": rt, "kept_tokens": kt,
                    "removed": [(i, r, next(removed_tokens)) for i, _, r in removed],
                    "restored_ok": restored == d["text"]})
    return out


def per_source(rows: list[dict]) -> dict:
    table = {}
    by_source = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    for source, rs in by_source.items():
        kept_before = [r for r in rs if not r["before"]]
        kept_after = [r for r in rs if not r["after"]]
        table[source] = {
            "docs": len(rs), "tokens": sum(r["tokens"] for r in rs),
            "before_docs": len(kept_before), "before_tokens": sum(r["tokens"] for r in kept_before),
            "after_docs": len(kept_after), "after_tokens": sum(r["kept_tokens"] for r in kept_after),
            "lines_removed": sum(len(r["removed"]) for r in rs),
            "before_top": Counter(r["before"][0] for r in rs if r["before"]).most_common(3),
            "after_top": Counter(r["after"][0] for r in rs if r["after"]).most_common(3),
        }
    return table


def line_rules(rows: list[dict]) -> dict:
    lines, tokens = Counter(), Counter()
    for r in rows:
        for _, reason, t in r["removed"]:
            lines[reason] += 1
            tokens[reason] += t
    return {reason: {"lines": lines[reason], "tokens": tokens[reason]} for reason in sorted(lines)}


def page_rules(rows: list[dict]) -> dict:
    first = Counter(r["after"][0] for r in rows if r["after"])
    toks = Counter()
    for r in rows:
        if r["after"]:
            toks[r["after"][0]] += r["kept_tokens"]
    return {code: {"docs": n, "tokens": toks[code]} for code, n in first.most_common()}


DT_SCRIPT = r'''
import json, sys
from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                       GopherRepetitionFilter)
filters = {"gopher_repetition": GopherRepetitionFilter(), "gopher_quality": GopherQualityFilter(),
           "c4": C4QualityFilter(filter_no_terminal_punct=False),
           "fineweb": FineWebQualityFilter(char_duplicates_ratio=0.1)}
for line in sys.stdin:
    d = json.loads(line)
    out = {"id": d["id"]}
    for name, f in filters.items():
        doc = Document(text=d["text"], id=d["id"])
        res = f.filter(doc)
        ok, reason = (res, None) if isinstance(res, bool) else res
        out[name] = None if ok else (reason or "dropped")
        if name == "c4" and ok:
            out["c4_lines"] = [l.strip() for l in doc.text.split("\n") if l.strip()]
    print(json.dumps(out))
'''


def datatrove_agreement(rows: list[dict], dt_python: str) -> dict:
    en = [r for r in rows if r["lang"] == "en"]
    stdin = "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in en)
    proc = subprocess.run([dt_python, "-c", DT_SCRIPT], input=stdin, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"datatrove run failed:\n{proc.stderr[-2000:]}")
    dt = {v["id"]: v for v in map(json.loads, proc.stdout.splitlines())}
    cfg = QualityConfig()
    res = {}
    raw_fails = {r["id"]: all_failures(document_stats(r["text"], "en"), "en", cfg) for r in en}
    for family in FAMILIES:
        codes = {x.code for x in RULES if x.ruleset == family}
        agree, classes, examples = 0, Counter(), {}
        for r in en:
            # C4: ours = line rules, then C4's page rules on the cleaned text; others: the family on the raw text
            fails = r["after"] if family == "c4" else raw_fails[r["id"]]
            ours = next((c for c in fails if c in codes), None)
            theirs = dt[r["id"]][family]
            if (ours is None) == (theirs is None):
                agree += 1
                continue
            key = f"ours {ours or 'keep'} / datatrove {theirs or 'keep'}"
            classes[key] += 1
            examples.setdefault(key, r["id"])
        entry = {"docs": len(en), "agree": agree, "agreement": round(agree / len(en), 4),
                 "disagreements": [{"class": k, "docs": n, "example": examples[k]} for k, n in classes.most_common()]}
        if family == "c4":
            both = [r for r in en if not any(c.startswith("c4_") for c in r["after"]) and dt[r["id"]]["c4"] is None]
            differ = [r["id"] for r in both if [ln.strip() for ln in r["kept_text"].split("\n") if ln.strip()]
                      != dt[r["id"]]["c4_lines"]]
            entry["kept_by_both"] = len(both)
            entry["same_kept_lines"] = len(both) - len(differ)
            entry["different_kept_lines_examples"] = differ[:5]
        res[family] = entry
    return res


# Who is right, per class of disagreement (family, substring of the class): the paper's words against each reading.
JUDGEMENT = {
    ("gopher_quality", "gopher_below_alpha_threshold"):
        "datatrove's spaCy tokens make every punctuation mark a word, so ordinary prose falls below 80% of words "
        "with a letter. Gopher (Rae et al. 2021, A.1.1): '80% of words in a document contain at least one "
        "alphabetic character' -- a comma is not a word. **Ours.**",
    ("fineweb", "line_punct_ratio"):
        "datatrove divides by every line, blank lines between paragraphs included, and a trailing space fails a "
        "line end. FineWeb (Penedo et al. 2024): 'fraction of lines ending with punctuation' -- lines of text, "
        "their end after trailing whitespace. **Ours.**",
    ("gopher_repetition", "ours gopher_dup_"):
        "datatrove counts only the repeats after the first occurrence of a duplicated n-gram (greedy skip), ours "
        "every occurrence (overlaps once). Gopher table A1: 'fraction of characters contained within all duplicate "
        "n-grams' -- all occurrences are duplicates. **Ours** (datatrove removes fewer).",
    ("gopher_repetition", "datatrove "):
        "word definitions: datatrove's spaCy tokens (punctuation as tokens, case kept) against our lower-cased "
        "whitespace words stripped of punctuation. The paper does not define its tokens: **either**.",
}


def _judgement(family: str, cls: str) -> str:
    return next((text for (fam, key), text in JUDGEMENT.items() if fam == family and key in cls), "")


def markdown(res: dict) -> str:
    L = [f"# Quality rules before and after issue 16 ({res['date']})", "",
         f"`{res['command']}`. Before: rules at commit {BEFORE_COMMIT} (page rules, C4's line rules as document "
         "fractions). After: `lines` stage defaults, then the page rules on the cleaned text. Tokens: o200k_base; "
         "kept tokens after = tokens of the cleaned text of kept documents. Quality rules only (no LID, no dedup).",
         "", "| source | docs | tokens | kept docs before | kept docs after | kept tokens before | kept tokens after "
         "| lines removed | top page rule before | top page rule after |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for source, s in sorted(res["sources"].items()):
        def top(pairs):
            return ", ".join(f"{c} {n}" for c, n in pairs) or "-"
        L.append(f"| {source} | {s['docs']:,} | {s['tokens']:,} | {s['before_docs']:,} | {s['after_docs']:,} | "
                 f"{s['before_tokens']:,} ({s['before_tokens'] / s['tokens']:.1%}) | "
                 f"{s['after_tokens']:,} ({s['after_tokens'] / s['tokens']:.1%}) | {s['lines_removed']:,} | "
                 f"{top(s['before_top'])} | {top(s['after_top'])} |")
    hw = res["hard_wrapped"]
    L += ["", f"Hard-wrapped prose ({', '.join(HARD_WRAPPED)}): {hw['docs']} documents, {hw['tokens']:,} tokens; "
              f"kept before {hw['before_tokens'] / hw['tokens']:.1%} of tokens, after "
              f"{hw['after_tokens'] / hw['tokens']:.1%} (documents {hw['before_docs']} -> {hw['after_docs']}).",
          "", "## Line rules (after)", "", "| reason | lines | tokens |", "|---|---:|---:|"]
    L += [f"| {k} | {v['lines']:,} | {v['tokens']:,} |" for k, v in res["line_rules"].items()]
    L += ["", "## Page rules (after; first failing rule)", "", "| rule | docs | tokens |", "|---|---:|---:|"]
    L += [f"| {k} | {v['docs']:,} | {v['tokens']:,} |" for k, v in res["page_rules"].items()]
    zh = res["zh_web_pages"]
    L += ["", f"zh_web_pages: {zh['kept']} of {zh['docs']} pages kept after line cleaning (before: "
              f"{zh['kept_before']}); {zh['lines_removed']:,} of {zh['lines']:,} lines removed.",
          "", f"Reconstruction (original = kept lines + removed lines): {res['reconstruction_mismatches']} mismatches "
              f"of {res['docs']:,} documents."]
    if "datatrove" in res:
        L += ["", "## Per-filter agreement with datatrove (English documents, same thresholds)", ""]
        for family, e in res["datatrove"].items():
            extra = (f"; kept by both: {e['kept_by_both']}, same kept lines: {e['same_kept_lines']} (a difference: "
                     f"datatrove deletes Wikipedia citation markers such as '[1]' or '[]' inside a line, e.g. "
                     f"`{', '.join(e['different_kept_lines_examples']) or '-'}`; C4 does too, but a stage here only "
                     "removes whole lines)" if family == "c4" else "")
            L.append(f"* **{family}**: {e['agree']:,}/{e['docs']:,} same verdict ({e['agreement']:.1%}){extra}")
            L += [f"  * {d['class']}: {d['docs']} (e.g. `{d['example']}`) {_judgement(family, d['class'])}"
                  for d in e["disagreements"][:6]]
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dt-python", help="python of a venv with datatrove (bench/requirements-datatrove.txt)")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    rows = judge(build_corpus())
    hw = [r for r in rows if r["source"] in HARD_WRAPPED]
    zh_pages = [r for r in rows if r["source"] == "zh_web_pages"]
    res = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/quality_rules.py" + (f" --dt-python {args.dt_python}" if args.dt_python else ""),
        "docs": len(rows),
        "sources": per_source(rows),
        "hard_wrapped": {"docs": len(hw), "tokens": sum(r["tokens"] for r in hw),
                         "before_docs": sum(not r["before"] for r in hw),
                         "before_tokens": sum(r["tokens"] for r in hw if not r["before"]),
                         "after_docs": sum(not r["after"] for r in hw),
                         "after_tokens": sum(r["kept_tokens"] for r in hw if not r["after"])},
        "line_rules": line_rules(rows),
        "page_rules": page_rules(rows),
        "zh_web_pages": {"docs": len(zh_pages), "kept": sum(not r["after"] for r in zh_pages),
                         "kept_before": sum(not r["before"] for r in zh_pages),
                         "lines": sum(r["text"].count("\n") + 1 for r in zh_pages),
                         "lines_removed": sum(len(r["removed"]) for r in zh_pages),
                         "pages": [{"id": r["id"], "kept": not r["after"], "after": r["after"],
                                    "opening": [ln for ln in r["kept_text"].split("\n") if len(ln) > 40][:2]}
                                   for r in zh_pages]},
        "reconstruction_mismatches": sum(not r["restored_ok"] for r in rows),
    }
    if args.dt_python:
        res["datatrove"] = datatrove_agreement(rows, args.dt_python)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "quality_rules.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    md = markdown(res)
    (args.out_dir / "quality_rules.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
