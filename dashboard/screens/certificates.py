"""Certificates: the list and a certificate's live signature and hash checks.

A page script for ``st.navigation`` (see dashboard/app.py); the page itself is in views.py.
"""

from dashboard import views

views.certificates()
