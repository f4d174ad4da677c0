"""Ticket -> pairs: the internal (user, item) pairs a ticket erases, their original ids, and their
hash with users pseudonymised (what ledgers and certificates keep instead of the pairs)."""

from __future__ import annotations

import numpy as np

from unlearnrec.compliance.platform import Platform
from unlearnrec.data.splits import Splits
from unlearnrec.ledger import (
    Ticket,
)
from unlearnrec.records import certificates as certs


def resolve_pairs(files: Splits, ticket: Ticket) -> np.ndarray:
    """The internal (user, item) pairs a ticket erases, over every split of ``files``."""
    pairs = files.all_pairs()
    users = {str(u): i for i, u in enumerate(files.user_ids)}
    items = {str(v): i for i, v in enumerate(files.item_ids)}
    if ticket.kind == "erase_user":
        u = users.get(ticket.subject or "")
        return pairs[pairs[:, 0] == u] if u is not None else pairs[:0]
    if ticket.kind == "erase_interactions":
        u = users.get(ticket.subject or "")
        wanted = [items[i] for i in ticket.items if i in items]
        if u is None or not wanted:
            return pairs[:0]
        return pairs[(pairs[:, 0] == u) & np.isin(pairs[:, 1], wanted)]
    if ticket.kind == "take_down_item":
        i = items.get(ticket.items[0]) if ticket.items else None
        return pairs[pairs[:, 1] == i] if i is not None else pairs[:0]
    raise ValueError(f"unknown ticket kind {ticket.kind!r}")


def original_pairs(files: Splits, pairs: np.ndarray) -> list[tuple[str, str]]:
    return [(str(files.user_ids[u]), str(files.item_ids[i])) for u, i in pairs]


def pseudonymised_hash(platform: Platform, files: Splits, pairs: np.ndarray) -> str:
    """Hash of the erased pairs with users pseudonymised (items are catalogue ids)."""
    return certs.hash_interactions(
        (platform.pseudonymise(u), i) for u, i in original_pairs(files, pairs)
    )
