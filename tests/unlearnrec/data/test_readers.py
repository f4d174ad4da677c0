"""Readers and writer for LightGCN folders and MovieLens rating files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from unlearnrec.data import (
    DataFormatError,
    InteractionData,
    read_dataset,
    read_lightgcn,
    read_movielens,
    write_lightgcn,
)


def _folder(tmp_path: Path, **files: str) -> Path:
    """A LightGCN folder holding ``files`` (name without .txt -> text)."""
    folder = tmp_path / "ds"
    folder.mkdir(exist_ok=True)
    for stem, text in files.items():
        (folder / f"{stem}.txt").write_text(text)
    return folder


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _pairs(edges: np.ndarray) -> list[list[int]]:
    return edges.tolist()


# --------------------------------------------------------------------------- LightGCN: good files


def test_lightgcn_reads_pairs_sorted_with_ids_from_max_id(tmp_path: Path) -> None:
    """It reads train and test, sorts items, and sizes ids as max id + 1 over both files."""
    folder = _folder(tmp_path, train="0 2 1\n1 0\n", test="0 3\n2 4\n")
    data = read_lightgcn(folder)
    assert (data.num_users, data.num_items) == (3, 5)
    assert _pairs(data.train) == [[0, 1], [0, 2], [1, 0]]
    assert _pairs(data.test) == [[0, 3], [2, 4]]
    assert data.train.dtype == np.int64 and data.test.dtype == np.int64
    assert list(data.user_ids) == ["0", "1", "2"]
    assert list(data.item_ids) == ["0", "1", "2", "3", "4"]
    assert data.name == "ds"


def test_lightgcn_accepts_user_lines_without_items(tmp_path: Path) -> None:
    """A line holding only a user id counts that user but adds no pair."""
    folder = _folder(tmp_path, train="0 1\n3\n", test="0 0\n")
    data = read_lightgcn(folder)
    assert data.num_users == 4
    assert _pairs(data.train) == [[0, 1]]


def test_lightgcn_skips_blank_lines_and_dedupes_items(tmp_path: Path) -> None:
    """Blank lines are skipped, repeated items on a line collapse, CRLF line ends are fine."""
    folder = _folder(tmp_path, train="\n0 5 5 2\r\n\n  \n1 1 1\n", test="")
    data = read_lightgcn(folder, name="custom")
    assert _pairs(data.train) == [[0, 2], [0, 5], [1, 1]]
    assert len(data.test) == 0
    assert data.name == "custom"


def test_lightgcn_id_lists_give_original_ids_and_extra_ids(tmp_path: Path) -> None:
    """Id lists map internal ids to original ids and may name users/items with no pair."""
    folder = _folder(
        tmp_path,
        train="0 0\n1 1\n",
        test="0 1\n",
        user_list="org_id remap_id\n343 0\n5258 1\n77 2\n",
        item_list="org_id remap_id\nA9 0\nB7 1\nC5 2\n",
    )
    data = read_lightgcn(folder)
    assert (data.num_users, data.num_items) == (3, 3)
    assert list(data.user_ids) == ["343", "5258", "77"]
    assert list(data.item_ids) == ["A9", "B7", "C5"]
    assert data.user_index()["5258"] == 1


def test_lightgcn_without_test_file_splits_train(tmp_path: Path) -> None:
    """Without test.txt the pairs are split per user, deterministically for a seed."""
    folder = _folder(tmp_path, train="0 " + " ".join(map(str, range(10))) + "\n1 3\n")
    a = read_lightgcn(folder, test_fraction=0.3, seed=1)
    b = read_lightgcn(folder, test_fraction=0.3, seed=1)
    assert a.content_hash() == b.content_hash()
    assert len(a.train) == 8 and len(a.test) == 3
    assert [1, 3] in _pairs(a.train)  # a single interaction stays in train


# --------------------------------------------------------------------------- LightGCN: bad files


@pytest.mark.parametrize(
    ("files", "where", "reason"),
    [
        ({"train": "0 1\n1 2\n2 x\n"}, "train.txt:3", "'x'"),
        ({"train": "0 1\n1 -2\n"}, "train.txt:2", "'-2'"),
        ({"train": "0 1.5\n"}, "train.txt:1", "'1.5'"),
        ({"train": "u1 1\n"}, "train.txt:1", "'u1'"),
        ({"train": "0 1\n\n0 2\n"}, "train.txt:3", "listed twice"),
        ({"train": "0 1\n", "test": "0 2\n0 3\n"}, "test.txt:2", "listed twice"),
        ({"train": "0 1 2\n1 4\n", "test": "0 3\n1 4\n"}, "test.txt:2", "also in train"),
        (
            {"train": "0 1\n", "user_list": "org_id remap_id\n5 0 extra\n"},
            "user_list.txt:2",
            "3 fields",
        ),
        ({"train": "0 1\n", "user_list": "org_id remap_id\n5 zero\n"}, "user_list.txt:2", "zero"),
        ({"train": "0 1\n", "user_list": "5 0\n"}, "user_list.txt:1", "header"),
        (
            {"train": "0 1\n", "item_list": "org_id remap_id\na 0\nb 0\n"},
            "item_list.txt:3",
            "twice",
        ),
        (
            {"train": "0 1\n", "item_list": "org_id remap_id\na 0\na 1\n"},
            "item_list.txt:3",
            "twice",
        ),
    ],
)
def test_lightgcn_rejects_malformed_lines_naming_file_and_line(
    tmp_path: Path, files: dict[str, str], where: str, reason: str
) -> None:
    """It rejects bad tokens, repeated users, train/test overlap and bad id lists by file:line."""
    folder = _folder(tmp_path, **files)
    with pytest.raises(DataFormatError) as info:
        read_lightgcn(folder)
    assert where in str(info.value)
    assert reason in str(info.value)
    assert info.value.line == int(where.rsplit(":", 1)[1])


def test_lightgcn_rejects_id_list_too_short_for_the_pairs(tmp_path: Path) -> None:
    """An id list that gives no original id to a user in the pairs is an error."""
    folder = _folder(tmp_path, train="0 1\n2 1\n", user_list="org_id remap_id\na 0\nb 1\n")
    with pytest.raises(DataFormatError, match=r"user_list\.txt"):
        read_lightgcn(folder)


def test_lightgcn_rejects_gaps_in_remap_ids(tmp_path: Path) -> None:
    """Remap ids must be 0..n-1 without gaps."""
    folder = _folder(tmp_path, train="0 1\n", item_list="org_id remap_id\na 0\nb 1\nc 3\n")
    with pytest.raises(DataFormatError, match="2 missing"):
        read_lightgcn(folder)


def test_lightgcn_needs_train_file(tmp_path: Path) -> None:
    """A folder without train.txt is reported as missing, not as an empty dataset."""
    folder = _folder(tmp_path, test="0 1\n")
    with pytest.raises(FileNotFoundError, match=r"train\.txt"):
        read_lightgcn(folder)


# --------------------------------------------------------------------------- MovieLens

ML1M = "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n10::30::1::978300275\n"
ML100K = "1\t10\t5\t881250949\n1\t20\t3\t891717742\n2\t10\t4\t878887116\n10\t30\t1\t880606923\n"
INTER_HEADER = "item_id:token\tuser_id:token\ttimestamp:float\trating:float\n"
INTER = INTER_HEADER + "10\t1\t881250949\t5\n20\t1\t891717742\t3\n10\t2\t8788871\t4\n30\t10\t8\t1\n"


@pytest.mark.parametrize(
    ("name", "text"), [("ratings.dat", ML1M), ("u.data", ML100K), ("a.inter", INTER)]
)
def test_movielens_formats_give_the_same_dataset(tmp_path: Path, name: str, text: str) -> None:
    """ML-1M, ML-100K and RecBole files (columns found by header name) read the same way."""
    data = read_movielens(_file(tmp_path, name, text), test_fraction=0.0)
    assert (data.num_users, data.num_items) == (3, 3)
    assert list(data.user_ids) == ["1", "2", "10"]  # numeric, not string, order
    assert list(data.item_ids) == ["10", "20", "30"]
    assert _pairs(data.train) == [[0, 0], [0, 1], [1, 0], [2, 2]]
    assert len(data.test) == 0
    assert data.name == Path(name).stem


@pytest.mark.parametrize(
    ("name", "text"), [("ratings.dat", ML1M), ("u.data", ML100K), ("a.inter", INTER)]
)
def test_movielens_min_rating_drops_low_ratings_and_their_ids(
    tmp_path: Path, name: str, text: str
) -> None:
    """With min_rating only ratings >= it count; users/items left without any get no id."""
    data = read_movielens(_file(tmp_path, name, text), min_rating=4, test_fraction=0.0)
    assert list(data.user_ids) == ["1", "2"]
    assert list(data.item_ids) == ["10"]
    assert _pairs(data.train) == [[0, 0], [1, 0]]


def test_movielens_dedupes_pairs_and_orders_string_ids(tmp_path: Path) -> None:
    """Repeated pairs count once; non-integer ids are ordered as strings."""
    text = "bob\tx\t1\t0\nalice\ty\t2\t0\nbob\tx\t5\t1\nalice\tx\t3\t2\n"
    data = read_movielens(_file(tmp_path, "u.data", text), test_fraction=0.0)
    assert list(data.user_ids) == ["alice", "bob"]
    assert list(data.item_ids) == ["x", "y"]
    assert _pairs(data.train) == [[0, 0], [0, 1], [1, 0]]


def test_movielens_splits_per_user_with_seed(tmp_path: Path) -> None:
    """The pairs are split per user; the same seed gives the same split."""
    text = "".join(f"1::{i}::5::0\n" for i in range(1, 11)) + "2::1::5::0\n"
    path = _file(tmp_path, "ratings.dat", text)
    a = read_movielens(path, test_fraction=0.2, seed=3)
    b = read_movielens(path, test_fraction=0.2, seed=3)
    assert a.content_hash() == b.content_hash()
    assert (len(a.train), len(a.test)) == (9, 2)
    assert [1, 0] in _pairs(a.train)


@pytest.mark.parametrize(
    ("name", "text", "where", "reason"),
    [
        ("ratings.dat", "1::10::5::0\n1::20::3\n", "ratings.dat:2", "expected 4 fields"),
        ("ratings.dat", "1::10::5::0\n1::20::3::0::9\n", "ratings.dat:2", "expected 4 fields"),
        ("u.data", "1\t10\t5\t0\n\n1\t20\tgood\t0\n", "u.data:3", "rating 'good'"),
        ("u.data", "1\t10\t5\t0\n1\t20\tnan\t0\n", "u.data:2", "rating 'nan'"),
        ("u.data", "1\t10\t5\t0\n1\t20\t5\tyesterday\n", "u.data:2", "timestamp"),
        ("u.data", "1\t10\t5\t0\n \t20\t5\t0\n", "u.data:2", "empty user id"),
        ("a.inter", INTER_HEADER + "10\t1\t0\t5\n10\t1\t0\n", "a.inter:3", "expected 4 fields"),
        ("r.txt", "1 10 5 0\n", "r.txt:1", "unrecognised"),  # CSV is read: tests/.../test_csv.py
    ],
)
def test_movielens_rejects_malformed_lines_naming_file_and_line(
    tmp_path: Path, name: str, text: str, where: str, reason: str
) -> None:
    """It rejects wrong field counts, non-numeric ratings/timestamps and empty ids by file:line."""
    with pytest.raises(DataFormatError) as info:
        read_movielens(_file(tmp_path, name, text))
    assert where in str(info.value)
    assert reason in str(info.value)


def test_movielens_min_rating_needs_a_rating_column(tmp_path: Path) -> None:
    """Filtering by rating on a file without ratings is an error, not a silent no-op."""
    path = _file(tmp_path, "a.inter", "user_id:token\titem_id:token\n1\t2\n")
    assert read_movielens(path, test_fraction=0.0).num_users == 1
    with pytest.raises(DataFormatError, match="no rating column"):
        read_movielens(path, min_rating=4)


# --------------------------------------------------------------------------- dispatch


def test_read_dataset_dispatches_on_folder_or_file(tmp_path: Path) -> None:
    """A folder is read as LightGCN, a file as MovieLens."""
    folder = _folder(tmp_path, train="0 1\n", test="0 0\n")
    assert read_dataset(folder).num_items == 2
    path = _file(tmp_path, "u.data", ML100K)
    assert read_dataset(path, min_rating=4, test_fraction=0.0).num_items == 1


def test_read_dataset_reports_a_missing_path(tmp_path: Path) -> None:
    """A missing path raises FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_dataset(tmp_path / "nowhere")


# --------------------------------------------------------------------------- writing


def _handmade() -> InteractionData:
    """User 2 only in test, user 3 and item 4 with no interaction at all."""
    return InteractionData(
        num_users=4,
        num_items=5,
        train=np.array([[0, 1], [0, 3], [1, 0]], dtype=np.int64),
        test=np.array([[0, 2], [2, 1]], dtype=np.int64),
        user_ids=np.array(["u10", "u11", "u12", "u13"], dtype=object),
        item_ids=np.array(["i0", "i1", "i2", "i3", "i4"], dtype=object),
        name="handmade",
    )


def test_write_lightgcn_writes_the_documented_bytes(tmp_path: Path) -> None:
    """Users with items, in order, items ascending, plus id lists with the header."""
    folder = write_lightgcn(_handmade(), tmp_path / "out")
    assert (folder / "train.txt").read_bytes() == b"0 1 3\n1 0\n"
    assert (folder / "test.txt").read_bytes() == b"0 2\n2 1\n"
    assert (folder / "user_list.txt").read_bytes() == (
        b"org_id remap_id\nu10 0\nu11 1\nu12 2\nu13 3\n"
    )
    assert (folder / "item_list.txt").read_bytes().startswith(b"org_id remap_id\ni0 0\n")
    assert sorted(os.listdir(folder)) == ["item_list.txt", "test.txt", "train.txt", "user_list.txt"]


def test_write_then_read_round_trips_including_empty_users_and_items(tmp_path: Path) -> None:
    """read_lightgcn(write_lightgcn(d)) has the same content hash, idle ids included."""
    data = _handmade()
    back = read_lightgcn(write_lightgcn(data, tmp_path / "out"))
    assert back.content_hash() == data.content_hash()
    assert (back.num_users, back.num_items) == (4, 5)


def test_write_lightgcn_is_byte_deterministic_and_overwrites(tmp_path: Path) -> None:
    """Writing twice into the same folder gives identical bytes and leaves no temp files."""
    folder = tmp_path / "out"
    write_lightgcn(_handmade(), folder)
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    write_lightgcn(_handmade(), folder)
    second = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert first == second


def test_write_lightgcn_refuses_ids_that_cannot_be_read_back(tmp_path: Path) -> None:
    """An original id with a space would break the id list, so writing it is refused."""
    data = _handmade()
    bad = InteractionData(
        num_users=data.num_users,
        num_items=data.num_items,
        train=data.train,
        test=data.test,
        user_ids=np.array(["a b", "c", "d", "e"], dtype=object),
        item_ids=data.item_ids,
    )
    with pytest.raises(ValueError, match="'a b'"):
        write_lightgcn(bad, tmp_path / "out")
