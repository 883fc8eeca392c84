"""Text handling shared by models: in-graph query parsing (and, later, the BERT tokenizer and checkpoints)."""
