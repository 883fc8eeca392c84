"""A session fixture's files built once per test run, whichever pytest-xdist worker asks first."""

import os
from pathlib import Path


def built_once(tmp_path_factory, name: str, build) -> Path:
    """`<shared tmp>/<name>`, filled by `build(directory)` once per test run: `make test` runs two pytest-xdist
    workers, and a session fixture used by test files on both would otherwise be built twice. The first worker builds
    under a file lock; the other waits and reuses the result."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's directory, above each worker's own
    target = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".built").exists():
            target.mkdir(parents=True, exist_ok=True)
            build(target)
            (target / ".built").touch()
    return target
