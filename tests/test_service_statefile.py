"""The shared item-state file and its journal, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_engine import load_bundle, write_bundle
from peakrec.errors import InvalidInputError, NotFoundError
from peakrec.service import statefile
from peakrec.service.statefile import ItemUpdate, SharedItemState


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    write_bundle(tmp_path, "v1", n=10)
    write_bundle(tmp_path, "v2", n=12, current=False)
    return tmp_path


def test_fresh_state_starts_from_build_time_columns(bundles: Path, tmp_path: Path):
    statefile.prepare(tmp_path / "state")
    s = SharedItemState(tmp_path / "state", load_bundle(bundles / "v1")).state
    assert s.stock.tolist() == [10] * 10 and s.available.tolist() == [1] * 10
    assert s.price[1] == pytest.approx(10.9)


def test_update_is_visible_through_a_second_mapping(bundles: Path, tmp_path: Path):
    statefile.prepare(tmp_path / "state")
    a = SharedItemState(tmp_path / "state", load_bundle(bundles / "v1"))
    b = SharedItemState(tmp_path / "state", load_bundle(bundles / "v1"))
    a.apply([ItemUpdate("I3", stock=0, price=1.5), ItemUpdate("I4", available=False)])
    assert b.state.stock[3] == 0 and b.state.price[3] == pytest.approx(1.5)
    assert b.state.available[4] == 0 and b.state.stock[4] == 10


def test_other_bundle_catches_up_from_the_journal(bundles: Path, tmp_path: Path):
    statefile.prepare(tmp_path / "state")
    old = SharedItemState(tmp_path / "state", load_bundle(bundles / "v1"))
    new = SharedItemState(tmp_path / "state", load_bundle(bundles / "v2"))
    old.apply([ItemUpdate("I2", available=False)])
    assert new.state.available[2] == 1  # not yet refreshed
    new.refresh()
    assert new.state.available[2] == 0


def test_journal_is_replayed_onto_a_new_bundle_and_after_restart(bundles: Path, tmp_path: Path):
    state_dir = tmp_path / "state"
    statefile.prepare(state_dir)
    SharedItemState(state_dir, load_bundle(bundles / "v1")).apply([ItemUpdate("I7", stock=0)])
    assert SharedItemState(state_dir, load_bundle(bundles / "v2")).state.stock[7] == 0
    assert statefile.prepare(state_dir) == 1  # a restart rebuilds state files from the journal
    assert not list(state_dir.glob("items-*.state"))
    assert SharedItemState(state_dir, load_bundle(bundles / "v1")).state.stock[7] == 0


def test_torn_journal_tail_is_dropped(bundles: Path, tmp_path: Path):
    state_dir = tmp_path / "state"
    statefile.prepare(state_dir)
    SharedItemState(state_dir, load_bundle(bundles / "v1")).apply([ItemUpdate("I1", stock=3)])
    with open(state_dir / "journal.jsonl", "a") as journal:
        journal.write('{"seq": 2, "updates": [["I1", 0')  # crash mid-append: never acknowledged
    assert statefile.prepare(state_dir) == 1
    assert SharedItemState(state_dir, load_bundle(bundles / "v1")).state.stock[1] == 3


def test_unknown_item_rejects_the_whole_batch(bundles: Path, tmp_path: Path):
    statefile.prepare(tmp_path / "state")
    items = SharedItemState(tmp_path / "state", load_bundle(bundles / "v1"))
    with pytest.raises(NotFoundError, match="'NOPE'"):
        items.apply([ItemUpdate("I1", stock=0), ItemUpdate("NOPE", stock=0)])
    assert items.state.stock[1] == 10 and items.journal_seq == 0


@pytest.mark.parametrize(
    "update, field",
    [
        (ItemUpdate("I1", stock=-1), "updates[0].stock"),
        (ItemUpdate("I1", price=float("nan")), "updates[0].price"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    bundles: Path, tmp_path: Path, update: ItemUpdate, field: str
):
    statefile.prepare(tmp_path / "state")
    items = SharedItemState(tmp_path / "state", load_bundle(bundles / "v1"))
    with pytest.raises(InvalidInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        items.apply([update])


def test_append_after_a_writer_died_mid_line_repairs_the_tail(bundles: Path, tmp_path: Path):
    state_dir = tmp_path / "state"
    statefile.prepare(state_dir)
    items = SharedItemState(state_dir, load_bundle(bundles / "v1"))
    items.apply([ItemUpdate("I1", stock=3)])
    with open(state_dir / "journal.jsonl", "a") as journal:
        journal.write('{"seq": 2, "upd')  # killed mid-append, no reply sent
    assert items.apply([ItemUpdate("I2", stock=4)]) == 2
    lines = (state_dir / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    statefile.prepare(state_dir)
    fresh = SharedItemState(state_dir, load_bundle(bundles / "v1")).state
    assert fresh.stock[1] == 3 and fresh.stock[2] == 4


def test_works_without_prepare(bundles: Path, tmp_path: Path):
    (tmp_path / "fresh").mkdir()
    items = SharedItemState(tmp_path / "fresh", load_bundle(bundles / "v1"))
    assert items.apply([ItemUpdate("I1", stock=1)]) == 1 and items.journal_seq == 1


def test_compaction_keeps_every_item_latest_values_for_all_readers(bundles: Path, tmp_path: Path):
    """Random updates through a writer that compacts often, read by a second mapping of the same
    bundle, a file for another bundle that was behind, and one rebuilt after a restart; all must
    equal a plain dict model of the updates."""
    import random

    state_dir = tmp_path / "state"
    statefile.prepare(state_dir)
    writer = SharedItemState(state_dir, load_bundle(bundles / "v1"), compact_bytes=400)
    same = SharedItemState(state_dir, load_bundle(bundles / "v1"))
    behind = SharedItemState(state_dir, load_bundle(bundles / "v2"))
    model = {f"I{i}": [10, None, 1] for i in range(10)}
    rng = random.Random(4)
    sizes = []
    for step in range(60):
        item = f"I{rng.randrange(10)}"
        update = ItemUpdate(
            item, stock=rng.randrange(5) if rng.random() < 0.7 else None, available=rng.random() < 0.8
        )
        writer.apply([update])
        model[item] = [
            update.stock if update.stock is not None else model[item][0],
            None,
            int(update.available),
        ]
        sizes.append((state_dir / "journal.jsonl").stat().st_size)
        if step == 30:
            behind.refresh()  # reads across one compaction, then falls behind again
    assert max(sizes) < 1200 and len((state_dir / "journal.jsonl").read_text().splitlines()) < 60
    behind.refresh()
    statefile.prepare(state_dir)
    rebuilt = SharedItemState(state_dir, load_bundle(bundles / "v1"))
    for items in (writer, same, behind, rebuilt):
        for item, (stock, _price, available) in model.items():
            row = int(item[1:])
            assert items.state.stock[row] == stock and items.state.available[row] == available, item
    assert rebuilt.journal_seq == 60


def test_a_swapped_out_bundle_file_is_removed_and_its_writes_still_land(bundles: Path, tmp_path: Path):
    state_dir = tmp_path / "state"
    statefile.prepare(state_dir)
    old = SharedItemState(state_dir, load_bundle(bundles / "v1"))
    new = SharedItemState(state_dir, load_bundle(bundles / "v2"))
    old.unlink()
    assert sorted(p.name for p in state_dir.glob("items-*.state")) == ["items-v2.state"]
    old.apply([ItemUpdate("I5", stock=0)])  # a worker still on v1 while the swap goes round
    new.refresh()
    assert new.state.stock[5] == 0 and old.state.stock[5] == 0
    assert SharedItemState(state_dir, load_bundle(bundles / "v1")).state.stock[5] == 0  # rebuilt
