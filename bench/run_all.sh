#!/usr/bin/env bash
# Every benchmark, one after another on an otherwise idle machine (about two hours on 2 cores), then
# bench/RESULTS.md + RESULTS.json from their results. Each script also runs alone; see its docstring.
#   bash bench/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/dt-venv/bin/python ] || { python3 -m venv /tmp/dt-venv && /tmp/dt-venv/bin/pip install -q -r bench/requirements-datatrove.txt; }
python bench/lid_accuracy.py
python bench/cws_pku.py
python bench/minhash_speed.py
python bench/quality_rules.py
python bench/stage_throughput.py --runs 7 --e2e-runs 3
python bench/stage_throughput.py --data ../shared/data/corpus --zh-share 0.3 --docs 20000 --min-chars 200 \
    --max-chars 5000 --runs 3 --e2e-runs 3 --out-dir bench/results/stages-20k
python bench/dedup_bench.py --only accuracy,bbc,speed
python bench/dedup_bench.py --only memory --sizes 100000,1000000 --mem-runs 1 --max-minutes 40
python bench/datatrove_compare.py
python bench/marginal_curve.py
python bench/dryrun_vs_run.py
python bench/cluster_overhead.py
python bench/faults.py
python bench/collect_results.py
