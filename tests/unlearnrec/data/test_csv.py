"""Plain CSV/TSV interaction exports: ``user,item[,rating,timestamp]``, with or without a header,
string ids, ISO or numeric timestamps; malformed lines named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearnrec.data import read_dataset
from unlearnrec.data.dataset import DataFormatError


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _pairs(data) -> set[tuple[str, str]]:
    edges = [*data.train.tolist(), *data.test.tolist()]
    return {(str(data.user_ids[u]), str(data.item_ids[i])) for u, i in edges}


EXPECTED = {("alice", "book-1"), ("alice", "book-2"), ("bob", "book-2"), ("carol", "film9")}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("h.csv", "user,item\nalice,book-1\nalice,book-2\nbob,book-2\ncarol,film9\n"),
        ("n.csv", "alice,book-1\nalice,book-2\nbob,book-2\ncarol,film9\n"),
        (
            "h.tsv",
            "user_id\titem_id\trating\nalice\tbook-1\t5\nalice\tbook-2\t4\n"
            "bob\tbook-2\t3\ncarol\tfilm9\t1\n",
        ),
        (
            "t.csv",
            "userId,movieId,rating,timestamp\nalice,book-1,5,2026-01-02T10:00:00\n"
            "alice,book-2,4,1700000000\nbob,book-2,3,2026-01-03\ncarol,film9,1,0\n",
        ),
        (
            "q.csv",
            '"user","item"\n"alice","book-1"\n"alice","book-2"\n"bob","book-2"\n"carol","film9"\n',
        ),
        ("r.csv", "item,user\nbook-1,alice\nbook-2,alice\nbook-2,bob\nfilm9,carol\n"),
    ],
)
def test_csv_and_tsv_exports_are_read_with_their_own_ids(tmp_path, name, text):
    data = read_dataset(_file(tmp_path, name, text), test_fraction=0.0)
    assert _pairs(data) == EXPECTED
    assert sorted(map(str, data.user_ids)) == ["alice", "bob", "carol"]
    assert data.num_items == 3


def test_min_rating_keeps_the_positives_and_repeated_pairs_count_once(tmp_path):
    text = "user,item,rating\na,x,5\na,x,5\na,y,1\nb,y,4\n"
    data = read_dataset(_file(tmp_path, "r.csv", text), min_rating=4, test_fraction=0.0)
    assert _pairs(data) == {("a", "x"), ("b", "y")}


@pytest.mark.parametrize(
    ("name", "text", "where", "reason"),
    [
        ("a.csv", "user,item\nu1,i1\nu2\n", "a.csv:3", "expected 2 fields"),
        ("b.csv", "u1,i1,5\nu2,i2,five\n", "b.csv:2", "rating 'five'"),
        (
            "c.csv",
            "user,item,rating,timestamp\nu1,i1,5,0\nu1,i2,5,last week\n",
            "c.csv:3",
            "timestamp",
        ),
        ("d.csv", "u1,i1\n,i2\n", "d.csv:2", "empty user id"),
        ("e.csv", "u1,i1\nu 2,i2\n", "e.csv:2", "holds whitespace"),
        ("f.csv", "customer,product\n1,2\n3,4\n", "f.csv:1", "looks like a header"),
        ("g.csv", "1,2,3,4,5\n", "g.csv:1", "expected 2 to 4 fields"),
        ("h.csv", "user,item\n", "h.csv", "no ratings"),
        ("i.txt", "0 1 2 3\n1 2\n", "i.txt:1", "LightGCN folder"),
    ],
)
def test_malformed_exports_name_file_and_line(tmp_path, name, text, where, reason):
    with pytest.raises(DataFormatError) as info:
        read_dataset(_file(tmp_path, name, text))
    assert where in str(info.value) and reason in str(info.value)
