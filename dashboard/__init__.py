"""The compliance dashboard (Streamlit): tickets and deadlines, certificates checked live, what
unlearning did to the model. It reads the ledger read-only and never trains anything; importing
this package (or ``auth``, ``queries``) does not import torch or Streamlit.

Start it with ``unlearnrec dashboard`` (see docs/dashboard.md).
"""
