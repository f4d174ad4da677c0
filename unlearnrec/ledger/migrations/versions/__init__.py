"""Revision scripts, one per schema change (see ``unlearnrec.ledger.migrations``)."""
