"""Read and write interaction files: LightGCN text folders, MovieLens rating files and plain
CSV/TSV interaction exports.

Readers are strict on purpose: a malformed line raises ``DataFormatError`` naming the file and the
1-based line, because a silently skipped line would change which data a model (and therefore an
unlearning audit) was trained on. Writers are byte-deterministic and atomic so that a dataset
written twice hashes the same and a crash never leaves half a file behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from unlearnrec.data.dataset import DataFormatError, InteractionData, edge_keys, normalise_edges
from unlearnrec.data.split import split_train_test
from unlearnrec.files import atomic_write_text

__all__ = ["read_dataset", "read_lightgcn", "read_movielens", "write_lightgcn"]

ID_LIST_HEADER = ("org_id", "remap_id")


# --------------------------------------------------------------------------- shared helpers


def _read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 text file, without line ends (universal newlines).

    Splits on ``\\n`` only (not ``str.splitlines``, which also breaks on form feeds and other
    separators) so that reported line numbers match what an editor shows.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _is_uint(token: str) -> bool:
    """True for a non-negative decimal integer written in ASCII digits only."""
    return token.isascii() and token.isdigit()


def _check_uints(path: Path, lineno: int, tokens: list[str]) -> None:
    """Raise on the first token that is not a non-negative integer."""
    for token in tokens:
        if not _is_uint(token):
            raise DataFormatError(str(path), lineno, f"{token!r} is not a non-negative integer id")


# --------------------------------------------------------------------------- LightGCN text


def _parse_adjacency(path: Path) -> tuple[np.ndarray, dict[int, int]]:
    """Parse a ``uid iid1 iid2 ...`` file into pairs and a map user -> line number.

    Items are checked one line at a time with a single ``str.isdigit`` over the joined tokens,
    which keeps Gowalla's 810k edges at a fraction of a second.
    """
    user_line: dict[int, int] = {}
    users: list[int] = []
    items: list[int] = []
    counts: list[int] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if not tokens:
            continue
        joined = "".join(tokens)
        if not (joined.isascii() and joined.isdigit()):
            _check_uints(path, lineno, tokens)
        user = int(tokens[0])
        if user in user_line:
            raise DataFormatError(
                str(path), lineno, f"user {user} listed twice (first on line {user_line[user]})"
            )
        user_line[user] = lineno
        users.append(user)
        counts.append(len(tokens) - 1)
        items.extend(map(int, tokens[1:]))
    edges = np.empty((len(items), 2), dtype=np.int64)
    edges[:, 0] = np.repeat(np.asarray(users, dtype=np.int64), counts)
    edges[:, 1] = np.asarray(items, dtype=np.int64)
    return normalise_edges(edges), user_line


def _read_id_list(path: Path) -> np.ndarray:
    """Read an ``org_id remap_id`` list into an array: original id (str) by internal id.

    The remap ids must be exactly ``0..n-1`` and the original ids distinct, otherwise two
    internal ids would answer to the same original id (or one to none).
    """
    lines = _read_lines(path)
    numbered = [(n, line.split()) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered or tuple(numbered[0][1]) != ID_LIST_HEADER:
        line = numbered[0][0] if numbered else None
        raise DataFormatError(str(path), line, "expected the header line 'org_id remap_id'")
    originals: dict[int, str] = {}
    seen: dict[str, int] = {}
    for lineno, tokens in numbered[1:]:
        if len(tokens) != 2:
            raise DataFormatError(
                str(path), lineno, f"expected 'org_id remap_id', got {len(tokens)} fields"
            )
        org, remap = tokens
        if not _is_uint(remap):
            raise DataFormatError(str(path), lineno, f"remap id {remap!r} is not an integer")
        idx = int(remap)
        if idx in originals:
            raise DataFormatError(str(path), lineno, f"remap id {idx} listed twice")
        if org in seen:
            raise DataFormatError(
                str(path), lineno, f"original id {org!r} listed twice (first on line {seen[org]})"
            )
        originals[idx] = org
        seen[org] = lineno
    if originals and max(originals) != len(originals) - 1:
        missing = min(set(range(max(originals) + 1)) - originals.keys())
        raise DataFormatError(str(path), None, f"remap ids are not contiguous: {missing} missing")
    return np.array([originals[i] for i in range(len(originals))], dtype=object)


def _max_id(*columns: np.ndarray) -> int:
    """Largest id in any of the given columns, -1 if all are empty."""
    return max((int(c.max()) for c in columns if len(c)), default=-1)


def _resolve_ids(folder: Path, filename: str, needed: int, kind: str) -> tuple[int, np.ndarray]:
    """(count, original ids) for users or items: from the id list if present, else ``str(i)``."""
    path = folder / filename
    if not path.is_file():
        return needed, np.array([str(i) for i in range(needed)], dtype=object)
    ids = _read_id_list(path)
    if len(ids) < needed:
        raise DataFormatError(
            str(path), None, f"lists {len(ids)} {kind}s but the interactions use id {needed - 1}"
        )
    return len(ids), ids


def _check_disjoint(
    train: np.ndarray, test: np.ndarray, test_path: Path, test_lines: dict[int, int], n_items: int
) -> None:
    """A pair in both train and test would leak the answer into training: refuse it.

    A binary search over the sorted train keys; ``np.isin`` is several times slower here.
    """
    train_keys = edge_keys(train, n_items)  # sorted, since train is sorted by (user, item)
    test_keys = edge_keys(test, n_items)
    pos = np.minimum(np.searchsorted(train_keys, test_keys), max(len(train_keys) - 1, 0))
    overlap = train_keys[pos] == test_keys if len(train_keys) else np.zeros(len(test), bool)
    if overlap.any():
        user, item = (int(x) for x in test[np.argmax(overlap)])
        raise DataFormatError(
            str(test_path), test_lines[user], f"pair (user {user}, item {item}) is also in train"
        )


def read_lightgcn(
    folder: str | os.PathLike[str],
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
) -> InteractionData:
    """Read a LightGCN folder (``train.txt``, optional ``test.txt`` and id lists).

    Without ``test.txt`` the training pairs are split with ``split_train_test``. The id counts are
    max id + 1 over both files and the id lists, so users or items without any interaction (which
    only the id lists mention) are kept.
    """
    folder = Path(folder)
    train_path = folder / "train.txt"
    if not train_path.is_file():
        raise FileNotFoundError(f"LightGCN folder {folder} has no train.txt")
    train, train_lines = _parse_adjacency(train_path)
    test_path = folder / "test.txt"
    if test_path.is_file():
        test, test_lines = _parse_adjacency(test_path)
    else:
        test, test_lines = np.zeros((0, 2), dtype=np.int64), {}
    # Users come from the line heads, so a line without items still counts its user.
    max_user = max(max(train_lines, default=-1), max(test_lines, default=-1))
    num_users, user_ids = _resolve_ids(folder, "user_list.txt", max_user + 1, "user")
    num_items, item_ids = _resolve_ids(
        folder, "item_list.txt", _max_id(train[:, 1], test[:, 1]) + 1, "item"
    )
    if test_path.is_file():
        _check_disjoint(train, test, test_path, test_lines, num_items)
    else:
        train, test = split_train_test(train, num_users, test_fraction, seed)
    return InteractionData(
        num_users=num_users,
        num_items=num_items,
        train=train,
        test=test,
        user_ids=user_ids,
        item_ids=item_ids,
        name=name if name is not None else folder.resolve().name,
    )


# --------------------------------------------------------------------------- MovieLens


# Header names per column (case-insensitive; RecBole's ``:token`` / ``:float`` dropped).
HEADER_NAMES = {
    "user_id": ("user_id", "user", "userid", "uid", "user id"),
    "item_id": ("item_id", "item", "itemid", "iid", "item id", "movie_id", "movieid", "product_id"),
    "rating": ("rating", "ratings", "score"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime"),
}
PLAIN_COLUMNS = ("user_id", "item_id", "rating", "timestamp")  # a headerless line's order

FORMATS_HINT = (
    "expected MovieLens 'user::item::rating::timestamp' (ml-1m ratings.dat), tab-separated "
    "'user item rating timestamp' (ml-100k u.data), a CSV/TSV of 'user,item[,rating,timestamp]' "
    "with or without a header (or a RecBole .inter file), or a LightGCN folder (train.txt, "
    "test.txt: give the folder)"
)


def _header_columns(fields: list[str]) -> dict[str, int] | None:
    """Column index per known column when ``fields`` is a header naming a user and an item."""
    names = [f.strip().strip('"').split(":", 1)[0].strip().lower() for f in fields]
    cols: dict[str, int] = {}
    for column, aliases in HEADER_NAMES.items():
        found = [k for k, name in enumerate(names) if name in aliases]
        if found:
            cols[column] = found[0]
    return cols if "user_id" in cols and "item_id" in cols else None


def _looks_numeric(fields: list[str]) -> bool:
    return all(f.strip().strip('"').replace(".", "", 1).isdigit() for f in fields)


def _detect_movielens(
    path: Path, lines: list[str], first: int
) -> tuple[str, dict[str, int], int, bool]:
    """Recognise the format from the first line: (separator, column indexes, width, has header).

    ``::`` means ML-1M ``ratings.dat``; otherwise tabs, then commas, separate fields. A first
    line naming a user and an item column (``user_id`` / ``user``, ``item_id`` / ``item``, ...;
    RecBole adds ``:token`` / ``:float``) is a header; without one the columns are ``user item
    [rating [timestamp]]`` (ML-100K ``u.data`` is the tab-separated four-column case). A first
    line of words over lines of numbers is a header with names we do not know: refused, rather
    than read as a pair of ids.
    """
    line = lines[first]
    if "::" in line:
        return "::", {c: k for k, c in enumerate(PLAIN_COLUMNS)}, 4, False
    sep = "\t" if "\t" in line else "," if "," in line else None
    if sep is None:
        raise DataFormatError(str(path), first + 1, f"unrecognised rating format: {FORMATS_HINT}")
    fields = line.split(sep)
    cols = _header_columns(fields)
    if cols is not None:
        return sep, cols, len(fields), True
    if not 2 <= len(fields) <= 4:
        raise DataFormatError(
            str(path),
            first + 1,
            f"expected 2 to 4 fields (user, item[, rating[, timestamp]]) or a header naming "
            f"user and item columns, got {len(fields)}",
        )
    nxt = next((ln for ln in lines[first + 1 :] if ln.strip()), None)
    if (
        nxt is not None
        and not any(_looks_numeric([f]) for f in fields)
        and _looks_numeric(nxt.split(sep))
    ):
        raise DataFormatError(
            str(path),
            first + 1,
            f"looks like a header but names no user and item column ({line.strip()!r}): "
            "name them user,item[,rating,timestamp]",
        )
    return sep, {c: k for k, c in enumerate(PLAIN_COLUMNS[: len(fields)])}, len(fields), False


def _split_columns(
    path: Path, lines: list[str], start: int, sep: str, width: int
) -> tuple[list[list[str]], np.ndarray]:
    """The ``width`` columns (as strings) of the data lines from ``lines[start]`` on, and the
    1-based line number of each row.

    Splitting the joined text once yields a flat list of strings, which the garbage collector
    does not track; a list per line would make ML-1M several times slower. Lines are looked at
    one by one only when one has the wrong number of separators, to skip blank ones and name
    the first malformed one.
    """
    body = lines[start:]
    linenos = np.arange(start + 1, start + 1 + len(body), dtype=np.int64)
    counts = np.array([line.count(sep) for line in body], dtype=np.int64)
    odd = np.flatnonzero(counts != width - 1)
    if len(odd):
        for k in odd.tolist():
            if body[k].strip():
                raise DataFormatError(
                    str(path), start + 1 + k, f"expected {width} fields, got {counts[k] + 1}"
                )
        keep = np.ones(len(body), dtype=bool)
        keep[odd] = False
        body = [body[k] for k in np.flatnonzero(keep).tolist()]
        linenos = linenos[keep]
    if not body:
        return [[] for _ in range(width)], linenos
    flat = sep.join(body).split(sep)
    return [flat[c::width] for c in range(width)], linenos


def _numeric_column(path: Path, column: str, values: list[str], linenos: np.ndarray) -> np.ndarray:
    """Convert a numeric column, naming the first line whose value is not a finite number.

    Only distinct values are parsed (ratings take a handful), which beats ``np.array(values,
    dtype=float)`` on a million lines.
    """
    table: dict[str, float] = {}
    for value in dict.fromkeys(values):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            lineno = int(linenos[values.index(value)])
            raise DataFormatError(str(path), lineno, f"{column} {value.strip()!r} is not a number")
        table[value] = number
    return np.fromiter(map(table.__getitem__, values), dtype=np.float64, count=len(values))


def _check_numeric(path: Path, column: str, values: list[str], linenos: np.ndarray) -> None:
    """Validate a column we do not use (timestamps): all-digit columns pass in one string test;
    otherwise each distinct value must be a number or an ISO 8601 date-time."""
    joined = "".join(values)
    if joined.isascii() and joined.isdigit() and "" not in values:
        return
    from datetime import datetime

    for value in dict.fromkeys(values):
        text = value.strip().strip('"')
        try:
            if math.isfinite(float(text)):
                continue
        except ValueError:
            pass
        try:
            datetime.fromisoformat(text)
        except ValueError:
            lineno = int(linenos[values.index(value)])
            raise DataFormatError(
                str(path), lineno, f"{column} {text!r} is neither a number nor an ISO 8601 date"
            ) from None


def _codes(tokens: list[str]) -> tuple[np.ndarray, list[str]]:
    """Factorise tokens: (code per token, distinct tokens in first-seen order)."""
    distinct = dict.fromkeys(tokens)
    index = {tok: k for k, tok in enumerate(distinct)}
    codes = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    return codes, list(distinct)


def _original_order(ids: list[str]) -> list[str]:
    """Numeric order when every id is an integer (so "10" follows "9"), string order otherwise."""
    try:
        return sorted(ids, key=lambda tok: (int(tok), tok))
    except ValueError:
        return sorted(ids)


def _unquote(token: str) -> str:
    """A CSV field without one pair of surrounding double quotes (spreadsheet exports)."""
    return token[1:-1].strip() if len(token) >= 2 and token[0] == token[-1] == '"' else token


def _assign_ids(
    path: Path, tokens: list[str], keep: np.ndarray | None, linenos: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous internal ids, in increasing order of the original id, for the kept rows.

    Ids are stripped of surrounding spaces (an empty one names its line); ids occurring only in
    dropped rows get no internal id. Returns (internal id per kept row, original id per internal
    id). All per-id work is on the distinct tokens, so a million rows cost two dict passes.
    """
    codes, distinct = _codes(tokens)
    cleaned = [_unquote(tok.strip()) for tok in distinct]
    if "" in cleaned:
        bad = distinct[cleaned.index("")]
        raise DataFormatError(str(path), int(linenos[tokens.index(bad)]), f"empty {kind} id")
    spaced = next((k for k, tok in enumerate(cleaned) if len(tok.split()) != 1), None)
    if spaced is not None:  # the platform's id lists are whitespace-separated
        raise DataFormatError(
            str(path),
            int(linenos[tokens.index(distinct[spaced])]),
            f"{kind} id {cleaned[spaced]!r} holds whitespace",
        )
    if keep is not None:
        codes = codes[keep]
    present = np.flatnonzero(np.bincount(codes, minlength=len(distinct)))
    originals = _original_order(list(dict.fromkeys(cleaned[c] for c in present.tolist())))
    internal_of = {tok: i for i, tok in enumerate(originals)}
    lookup = np.full(len(distinct), -1, dtype=np.int64)
    lookup[present] = [internal_of[cleaned[c]] for c in present.tolist()]
    return lookup[codes], np.array(originals, dtype=object)


def read_movielens(
    path: str | os.PathLike[str],
    *,
    min_rating: float | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
) -> InteractionData:
    """Read an ML-1M ``ratings.dat``, an ML-100K ``u.data``, a RecBole ``.inter`` file or a
    CSV/TSV of ``user,item[,rating,timestamp]`` with or without a header (ids any strings
    without whitespace; timestamps numbers or ISO 8601 dates).

    Ratings become implicit positives: all of them, or only those ``>= min_rating``. Ids are
    assigned after filtering, so users and items left without interactions get none; then the
    pairs are split per user with ``split_train_test``. A repeated pair counts once.
    """
    path = Path(path)
    lines = _read_lines(path)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DataFormatError(str(path), None, "file holds no ratings")
    sep, cols, width, has_header = _detect_movielens(path, lines, first)
    start = first + 1 if has_header else first
    columns, linenos = _split_columns(path, lines, start, sep, width)
    if "timestamp" in cols:
        _check_numeric(path, "timestamp", columns[cols["timestamp"]], linenos)
    keep = None
    if "rating" in cols:
        raw = columns[cols["rating"]]
        if sep == ",":
            raw = [_unquote(v.strip()) for v in raw]
        ratings = _numeric_column(path, "rating", raw, linenos)
        if min_rating is not None:
            keep = ratings >= min_rating
    elif min_rating is not None:
        raise DataFormatError(str(path), None, "min_rating given but the file has no rating column")
    if not len(linenos):
        raise DataFormatError(str(path), None, "file holds a header but no ratings")
    user_idx, user_ids = _assign_ids(path, columns[cols["user_id"]], keep, linenos, "user")
    item_idx, item_ids = _assign_ids(path, columns[cols["item_id"]], keep, linenos, "item")
    edges = normalise_edges(np.stack([user_idx, item_idx], axis=1))
    train, test = split_train_test(edges, len(user_ids), test_fraction, seed)
    return InteractionData(
        num_users=len(user_ids),
        num_items=len(item_ids),
        train=train,
        test=test,
        user_ids=user_ids,
        item_ids=item_ids,
        name=name if name is not None else path.stem,
    )


# --------------------------------------------------------------------------- dispatch


def read_dataset(
    path: str | os.PathLike[str], *, min_rating: float | None = None, **kw: Any
) -> InteractionData:
    """Read a dataset from a LightGCN folder or a MovieLens rating file.

    ``min_rating`` applies to rating files only (LightGCN folders hold implicit feedback already).
    """
    p = Path(path)
    if p.is_dir():
        return read_lightgcn(p, **kw)
    if p.is_file():
        return read_movielens(p, min_rating=min_rating, **kw)
    raise FileNotFoundError(
        f"dataset path {str(p)!r} does not exist (expected a LightGCN folder or a rating file)"
    )


# --------------------------------------------------------------------------- writing


def _adjacency_text(edges: np.ndarray) -> str:
    """``uid iid ...`` lines for every user with at least one pair; edges must be sorted."""
    if len(edges) == 0:
        return ""
    users, starts = np.unique(edges[:, 0], return_index=True)
    groups = np.split(edges[:, 1], starts[1:])
    return "".join(
        f"{u} {' '.join(map(str, g.tolist()))}\n"
        for u, g in zip(users.tolist(), groups, strict=True)
    )


def _id_list_text(ids: Iterable[object], path: Path) -> str:
    """``org_id remap_id`` lines; an id with whitespace could not be read back, so refuse it."""
    lines = [" ".join(ID_LIST_HEADER)]
    for i, org in enumerate(map(str, ids)):
        if not org or len(org.split()) != 1 or org != org.strip():
            raise ValueError(f"cannot write original id {org!r} to {path}: empty or has spaces")
        lines.append(f"{org} {i}")
    return "\n".join(lines) + "\n"


def write_lightgcn(data: InteractionData, folder: str | os.PathLike[str]) -> Path:
    """Write ``data`` as a LightGCN folder that ``read_lightgcn`` reads back unchanged.

    Returns the folder. Pairs are re-sorted so the bytes depend only on the dataset's content.
    """
    if len(data.user_ids) != data.num_users or len(data.item_ids) != data.num_items:
        raise ValueError("user_ids / item_ids must hold one original id per user / item")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "train.txt": _adjacency_text(normalise_edges(data.train)),
        "test.txt": _adjacency_text(normalise_edges(data.test)),
        "user_list.txt": _id_list_text(data.user_ids, folder / "user_list.txt"),
        "item_list.txt": _id_list_text(data.item_ids, folder / "item_list.txt"),
    }
    for filename, text in texts.items():
        atomic_write_text(folder / filename, text)
    return folder


def read_adjacency(path: str | os.PathLike[str]) -> np.ndarray:
    """The (E, 2) pairs of one ``uid iid1 iid2 ...`` file (e.g. a ``valid.txt`` beside a split)."""
    return _parse_adjacency(Path(path))[0]


def write_adjacency(path: str | os.PathLike[str], edges: np.ndarray) -> None:
    """Write pairs as a ``uid iid1 iid2 ...`` file, atomically and byte-deterministically."""
    atomic_write_text(Path(path), _adjacency_text(normalise_edges(edges)))
