"""The offline drivers: ``pipeline`` (the DVC stages of ``dvc.yaml``), ``bench`` (unlearning
methods against retrain on one dataset), ``scaling`` (one request on growing synthetic graphs)
and ``shared`` (splits, the base model and requests they have in common)."""
