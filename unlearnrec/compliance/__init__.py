"""The compliance workflow's building blocks (no Prefect here: ``flows/`` wraps them as tasks)."""
