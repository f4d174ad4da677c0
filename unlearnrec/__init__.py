"""unlearnrec: certified forgetting for graph recommenders (UnlearnRec, SIGIR 2025)."""

__version__ = "0.1.0"
