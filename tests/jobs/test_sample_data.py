"""jobs.sample_data: the canonical layout, determinism, broken rows and the behaviour signals."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conf.settings import SampleSettings
from jobs.raw_contract import INTERACTION_FIELDS
from jobs.sample_data import BROKEN_CLASSES, build_world, generate, main

SETTINGS = SampleSettings()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict, float]:
    """The default sample, generated once: (root, returned counts, seconds it took)."""
    root = tmp_path_factory.mktemp("sample")
    started = time.perf_counter()
    counts = generate(SETTINGS, root)
    return root, counts, time.perf_counter() - started


@pytest.fixture(scope="module")
def manifest(sample) -> dict:
    return json.loads((sample[0] / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def events(sample, manifest) -> pd.DataFrame:
    """Valid rows of every day (the broken tail excluded), typed, with the folder's ds."""
    frames = []
    for ds, n in manifest["rows_per_day"].items():
        path = sample[0] / "interactions" / f"ds={ds}" / "part-0.csv"
        frame = pd.read_csv(path, nrows=n, dtype=str, keep_default_na=False)
        frames.append(frame.assign(ds=ds))
    df = pd.concat(frames, ignore_index=True)
    for col in ("rating", "play_seconds", "item_duration_seconds"):
        df[col] = df[col].astype(float)
    for col in ("like", "follow", "comment", "share", "dislike"):
        df[col] = df[col].astype(int)
    df["u"] = df.user_id.str[1:].astype(int)
    df["i"] = df.item_id.str[1:].astype(int)
    return df


def _day_files(root: Path) -> list[Path]:
    return sorted((root / "interactions").glob("ds=*/part-0.csv"))


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- layout --------------------------------------------------------------------------------


def test_layout_and_columns(sample):
    root = sample[0]
    days = [(SETTINGS.start_date + timedelta(days=d)).isoformat() for d in range(SETTINGS.days)]
    assert [p.parent.name for p in _day_files(root)] == [f"ds={ds}" for ds in days]
    for path in _day_files(root):
        assert path.read_text().splitlines()[0] == ",".join(INTERACTION_FIELDS)
    users = pd.read_csv(root / "users" / "users.csv", dtype=str)
    assert list(users.columns) == ["user_id", "age", "gender", "region"]
    assert users.user_id.tolist() == [f"u{u}" for u in range(SETTINGS.n_users)]
    assert users.age.astype(int).between(13, 80).all()


def test_items_jsonl(sample):
    lines = (sample[0] / "items" / "items.jsonl").read_text().splitlines()
    items = [json.loads(line) for line in lines]
    assert len(items) == SETTINGS.n_items
    assert [it["item_id"] for it in items] == [f"i{i}" for i in range(SETTINGS.n_items)]
    for it in items:
        assert list(it) == ["item_id", "title", "description", "categories", "attributes", "image_path"]
        assert 3 <= len(it["title"].split()) <= 6
        assert it["description"].endswith(".")
        assert len(it["categories"]) == 2 and all(isinstance(c, str) for c in it["categories"])
        assert all(isinstance(v, str) for v in it["attributes"].values())
        assert {"author_id", "duration_bucket", "release_date"} <= set(it["attributes"])
        assert it["image_path"] is None
    assert len({it["categories"][0] for it in items}) == SETTINGS.n_clusters


def test_titles_carry_cluster_vocabulary(sample):
    """Text embeddings need signal: titles of one cluster share words, across clusters rarely."""
    items = [json.loads(x) for x in (sample[0] / "items" / "items.jsonl").read_text().splitlines()]
    vocab: dict[str, set[str]] = {}
    for it in items:
        vocab.setdefault(it["categories"][0], set()).update(w.lower() for w in it["title"].split())
    clusters = sorted(vocab)
    overlap = [len(vocab[a] & vocab[b]) / len(vocab[a] | vocab[b]) for a in clusters for b in clusters if a < b]
    assert max(overlap) < 0.5


def test_timestamps_iso_utc_and_ids(events):
    assert events.timestamp.str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z").all()
    assert events.user_id.str.fullmatch(r"u\d+").all() and events.item_id.str.fullmatch(r"i\d+").all()
    assert events.rating.between(1, 5).all() and (events.play_seconds > 0).all()
    assert not events.duplicated(["user_id", "item_id", "timestamp"]).any()


# ---- determinism, size, speed ----------------------------------------------------------------


def test_deterministic_bytes(sample, tmp_path):
    generate(SETTINGS, tmp_path)
    assert _all_files(tmp_path) == _all_files(sample[0])


def test_seed_changes_the_sample(sample, tmp_path):
    generate(SETTINGS.model_copy(update={"seed": SETTINGS.seed + 1}), tmp_path)
    assert (
        _all_files(tmp_path)["interactions/ds=2026-10-01/part-0.csv"]
        != _all_files(sample[0])["interactions/ds=2026-10-01/part-0.csv"]
    )


def test_default_size_and_speed(sample):
    _, counts, seconds = sample
    assert 10_000 <= counts["interactions"] <= 40_000
    assert seconds < 5.0


def test_regenerating_fewer_days_leaves_no_stale_days(tmp_path):
    generate(SampleSettings(n_users=20, n_items=30, n_clusters=3, days=4), tmp_path)
    generate(SampleSettings(n_users=20, n_items=30, n_clusters=3, days=2), tmp_path)
    assert len(_day_files(tmp_path)) == 2


# ---- counts and broken rows ----------------------------------------------------------------


def test_counts_match_manifest(sample, manifest):
    root, counts, _ = sample
    assert counts == manifest
    assert manifest["settings"]["seed"] == SETTINGS.seed
    for path in _day_files(root):
        ds = path.parent.name.removeprefix("ds=")
        data_lines = len(path.read_text().splitlines()) - 1
        assert data_lines == manifest["file_rows_per_day"][ds]
        assert data_lines == manifest["rows_per_day"][ds] + SETTINGS.broken_rows_per_day
    assert manifest["interactions"] == sum(manifest["rows_per_day"].values())
    assert manifest["users"] == SETTINGS.n_users and manifest["items"] == SETTINGS.n_items
    assert manifest["new_items"] > 0


def test_broken_counts_cycle_through_classes(manifest):
    total = SETTINGS.days * SETTINGS.broken_rows_per_day
    assert manifest["broken_total"] == total == len(manifest["broken_rows"])
    expected = {cls: len(range(k, total, len(BROKEN_CLASSES))) for k, cls in enumerate(BROKEN_CLASSES)}
    assert manifest["broken"] == expected
    assert all(n >= 8 for n in expected.values())  # 60 rows over 7 classes


def test_broken_rows_are_what_they_claim(sample, manifest):
    root = sample[0]
    for entry in manifest["broken_rows"]:
        ds = entry["ds"]
        lines = (root / "interactions" / f"ds={ds}" / "part-0.csv").read_text().splitlines()
        line = lines[entry["line"] - 1]  # header is line 1
        fields = line.split(",")
        cls = entry["class"]
        if cls == "too_few_fields":
            assert len(fields) == 2
            continue
        assert len(fields) == len(INTERACTION_FIELDS)
        if cls == "missing_user_id":
            assert fields[0] == ""
        elif cls == "bad_timestamp":
            assert fields[2] == "not-a-time"
        elif cls == "negative_play_seconds":
            assert float(fields[4]) < 0
        elif cls == "duplicate_row":
            assert line in lines[1 : entry["line"] - 1]
        elif cls == "rating_out_of_range":
            assert fields[3] == "9"
        elif cls == "wrong_day":
            assert pd.Timestamp(fields[2]).date() != date.fromisoformat(ds)


def test_only_wrong_day_rows_leave_their_folder(sample, manifest):
    """Every parseable timestamp is inside its folder's day, except the deliberately wrong ones."""
    root = sample[0]
    wrong = {(b["ds"], b["line"]) for b in manifest["broken_rows"] if b["class"] == "wrong_day"}
    for path in _day_files(root):
        ds = path.parent.name.removeprefix("ds=")
        for n, line in enumerate(path.read_text().splitlines()[1:], start=2):
            fields = line.split(",")
            if len(fields) < 3 or fields[2] == "not-a-time":
                continue
            inside = fields[2].startswith(ds + "T")
            assert inside != ((ds, n) in wrong), (ds, n, line)


# ---- behaviour signals ----------------------------------------------------------------------


def test_popularity_is_heavy_tailed(events):
    counts = events.item_id.value_counts()
    top = counts.iloc[: SETTINGS.n_items // 10].sum() / len(events)
    assert top > 0.35  # uniform popularity would give ~0.10


def test_users_concentrate_on_their_clusters(events):
    world = build_world(SETTINGS)
    cluster = world.item_cluster[events.i]
    in_taste = (cluster == world.user_primary[events.u]) | (cluster == world.user_secondary[events.u])
    assert in_taste.mean() > 0.5  # two of eight clusters would be 0.25 at random
    assert (cluster == world.user_primary[events.u]).mean() > 0.4


def test_play_ratio_higher_for_liked_items(events):
    ratio = events.play_seconds / events.item_duration_seconds
    assert ratio[events.like == 1].mean() > ratio[events.like == 0].mean() + 0.05
    assert (ratio > 1.0).any()  # rewatches exist
    assert events.rating[events.like == 1].mean() > events.rating[events.like == 0].mean()
    assert 0.0 < events.follow.mean() < events.like.mean()
    assert 0.0 < events.share.mean() < events.like.mean()
    assert events.dislike.sum() > 0


def test_sessions_follow_successors(events):
    """A sequential signal beyond popularity: item i is often followed by its successor."""
    world = build_world(SETTINGS)
    ordered = events.sort_values(["u", "ds", "timestamp"])
    nxt = ordered.groupby(["u", "ds"]).i.shift(-1)
    has_next = nxt.notna()
    hit = world.item_successor[ordered.i[has_next]] == nxt[has_next].astype(int)
    assert hit.mean() > 0.15


def test_nothing_before_release_and_new_items_are_watched(sample, events):
    items = [json.loads(x) for x in (sample[0] / "items" / "items.jsonl").read_text().splitlines()]
    release = {it["item_id"]: it["attributes"]["release_date"] for it in items}
    assert (events.ds >= events.item_id.map(release)).all()
    new = {k for k, v in release.items() if v > SETTINGS.start_date.isoformat()}
    assert new and events.item_id.isin(new).sum() > 0


def test_user_activity_is_heavy_tailed(events):
    per_user = events.user_id.value_counts()
    assert per_user.quantile(0.9) > 2.5 * per_user.median()


def test_world_is_reproducible():
    """Tests and stages can rebuild the latent truth from the settings alone."""
    a, b = build_world(SETTINGS), build_world(SETTINGS)
    for field in ("item_cluster", "item_successor", "item_release", "user_primary", "user_secondary"):
        assert np.array_equal(getattr(a, field), getattr(b, field))


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--days", "2", "--users", "20", "--items", "30", "--seed", "3"]) == 0
    assert "interactions over 2 days" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["settings"]["n_users"] == 20 and len(_day_files(tmp_path)) == 2
