"""Compliance workflow: ticket intake, data validation and the erasure flows."""
