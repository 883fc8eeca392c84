"""Text handling shared by models: in-graph query parsing, BERT checkpoints, the in-graph tokenizer and encoder.

- `price_limits`: price limits ('under $80') parsed from queries in the graph.
- `bert_checkpoint`: `resolve_checkpoint` finds a Hugging Face BERT directory (or the packaged all-MiniLM-L6-v2,
  sha256-checked, or a random stand-in with a warning) and `load_bert_model` loads it into a TFBertModel torch-free.
- `tokenizer`: `BertTokenizer`, a tf-keras layer turning raw strings into BERT ids with byte offsets.
- `bert_encoder`: `BertEncoder`, a tf-keras layer giving token states and normalised sentence embeddings.
- `slots`: query slots as character spans, and BIO tags over tokenizer offsets.

The BERT names are imported lazily, so `tfrec.text.price_limits` users do not pay for tensorflow-text.
"""

import importlib

_LAZY = {
    "BertCheckpoint": "bert_checkpoint",
    "CheckpointError": "bert_checkpoint",
    "resolve_checkpoint": "bert_checkpoint",
    "load_bert_model": "bert_checkpoint",
    "BertTokenizer": "tokenizer",
    "BertEncoder": "bert_encoder",
    "masked_mean_embedding": "bert_encoder",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
