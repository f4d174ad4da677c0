"""The page scripts ``st.navigation`` runs (one per page; not meant to be imported)."""
