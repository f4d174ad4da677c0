"""The platform's torch-free records: ``settings``, ``policy``, ``intake`` (ticket files),
``certificates`` (signed certificates) and ``verification`` (the typed verification report).
With ``unlearnrec.ledger`` they are the dashboard's only door into the core."""
