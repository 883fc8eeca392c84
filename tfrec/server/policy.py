"""TF Serving's model_version_policy: which of the versions on disk a model serves."""

from __future__ import annotations

import os
from typing import Dict, Iterable, Set

from tensorflow_serving.config import model_server_config_pb2

ModelConfig = model_server_config_pb2.ModelConfig


def versions_on_disk(base_path: str) -> Dict[int, str]:
    """Version number → directory for each integer-named directory under a model's base path (hidden staging
    directories, such as tfrec export's `.tmp-*`, and non-numeric names are skipped)."""
    if not os.path.isdir(base_path):
        return {}
    found = {}
    for entry in os.listdir(base_path):
        path = os.path.join(base_path, entry)
        if entry.isdigit() and int(entry) > 0 and os.path.isdir(path):
            found[int(entry)] = path
    return found


def allowed_versions(model: ModelConfig, available: Iterable[int]) -> Set[int]:
    """The versions the policy serves out of `available`: `latest { num_versions: N }` (the default, N=1) the
    newest N, `all` every one, `specific { versions: [...] }` the listed ones that exist."""
    policy = model.model_version_policy
    which = policy.WhichOneof("policy_choice")
    available = sorted(set(available))
    if which == "all":
        return set(available)
    if which == "specific":
        return set(policy.specific.versions) & set(available)
    n = policy.latest.num_versions if which == "latest" and policy.latest.num_versions > 0 else 1
    return set(available[-n:])
