"""Runs every benchmark in turn; each writes its own section of docs/benchmarks.md."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = ["input_pipeline.py", "lexical_homedepot.py", "dense_index.py"]

if __name__ == "__main__":
    for script in BENCHMARKS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, script)], check=True)
