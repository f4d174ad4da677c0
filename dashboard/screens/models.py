"""Models and data: utility and forgetting across runs, speed-up, version lineage.

A page script for ``st.navigation`` (see dashboard/app.py); the page itself is in views.py.
"""

from dashboard import views

views.models()
