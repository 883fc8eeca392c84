"""Runs every benchmark in turn; each writes its own section of docs/benchmarks.md."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = [  # every script in benchmarks/ that writes a section
    "input_pipeline.py",
    "lexical_homedepot.py",
    "homedepot_retrieval.py",
    "homedepot_semantic.py",
    "retrieval_speed.py",
    "retrieval_quality.py",
    "ranker_quality.py",
    "intent_quality.py",
    "intent_latency.py",
    "training_speed.py",
    "serving_load.py",
    "search_load.py",
    "search_load.py --user-state",
    "search_load.py --intent-student --tf-threads 1,2 --compare-set models.ranker_parallel_calls=2",
    "online_ingest.py",
    "ab_pricing.py",
]

HELPERS = {"__init__.py", "common.py", "run_all.py", "search_user_state.py",  # search_load.py --user-state
           "search_load_report.py"}  # search_load.py's section

if __name__ == "__main__":
    unlisted = sorted({f for f in os.listdir(HERE) if f.endswith(".py")} - HELPERS - {b.split()[0] for b in BENCHMARKS})
    if unlisted:
        print(f"warning: {unlisted} not in run_all.BENCHMARKS, so not run", flush=True)
    for script in BENCHMARKS:
        print(f"== {script}", flush=True)
        name, *options = script.split()
        subprocess.run([sys.executable, os.path.join(HERE, name), *options], check=True)
