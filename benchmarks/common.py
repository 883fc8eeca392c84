"""Shared benchmark helpers: the machine description, a timer, and writing one section of docs/benchmarks.md.

Each benchmark owns a section between `<!-- bench:NAME -->` markers, so rerunning one replaces only its figures.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every figure here is written by a script in `benchmarks/` (`make benchmarks` runs them all). Speeds are reported as
a ratio against a baseline measured in the same run; absolute times are context only and depend on the machine
named in each section.
"""


def machine() -> str:
    """CPU model, cores, memory, Python and TensorFlow versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = re.findall(r"model name\s*:\s*(.*)", f.read())
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    import tensorflow as tf

    return (
        f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"CPU only"
    )


def speed_probe(rounds: int = 5) -> float:
    """Milliseconds of CPU for a fixed workload (a Python loop and small float32 matmuls), the best of
    `rounds`: this VM's speed changes by up to 2x over hours with no CPU steal reported, so runs measured at
    different times are compared through it."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((96, 96)).astype(np.float32)
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        total = 0
        for i in range(400_000):
            total += i % 7
        for _ in range(1500):
            a = np.tanh(a @ a.T * 0.01)
        best = min(best, time.process_time() - start)
    return best * 1000.0


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def write_section(name: str, body: str) -> None:
    """Replaces (or appends) the section `name` of docs/benchmarks.md with `body`."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])
