"""Makes tiny_serving importable and saves the tiny model versions once per session."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny_serving import save_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_versions(tmp_path_factory):
    """{v: path} of the tiny model saved with scale v, v = 1..3 (copy them into a base path with add_version)."""
    root = tmp_path_factory.mktemp("tiny_versions")
    return {v: save_tiny_model(str(root / str(v)), v) for v in (1, 2, 3)}
