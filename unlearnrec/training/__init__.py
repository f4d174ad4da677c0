"""Training a backbone: ``loop`` (BPR training with early stopping on validation Recall, the
device, negative sampling) and ``checkpoint`` (self-describing model files)."""
