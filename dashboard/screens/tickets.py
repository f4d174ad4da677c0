"""Tickets: filters and search, a ticket's detail, its audit timeline and links.

A page script for ``st.navigation`` (see dashboard/app.py); the page itself is in views.py.
"""

from dashboard import views

views.tickets()
