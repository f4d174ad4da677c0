"""Overview: tickets by status, deadlines ahead, overdue and escalated tickets, last runs.

A page script for ``st.navigation`` (see dashboard/app.py); the page itself is in views.py.
"""

from dashboard import views

views.overview()
