"""models.codebook_io: save -> load round trip, fingerprints, and clear errors on corrupt files."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import faiss
import numpy as np
import pytest

from models.codebook_io import (
    MANIFEST_FILE,
    TENSORS_FILE,
    CodebookFormatError,
    input_fingerprint,
    load,
    save,
)
from models.rq_kmeans import RQKMeansConfig, fit, metrics


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    ids = [f"item{i}" for i in range(400)]
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # tiny k-means: spinning OpenMP workers only slow it down
    try:
        cb = fit(x, RQKMeansConfig(levels=2, codes_per_level=8))
    finally:
        faiss.omp_set_num_threads(before)
    return x, ids, cb


@pytest.fixture
def saved(tmp_path, data):
    x, ids, cb = data
    when = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    save(
        cb,
        tmp_path / "cb",
        version="rqk-test-1",
        fingerprint=input_fingerprint(x, ids),
        metrics=metrics(x, cb.train_codes, cb),
        created_at=when,
    )
    return tmp_path / "cb"


def test_round_trip(saved, data):
    x, ids, cb = data
    loaded, manifest = load(saved)
    assert loaded.levels == cb.levels and loaded.k_per_level == cb.k_per_level and loaded.dim == cb.dim
    for a, b in zip(loaded.centroids, cb.centroids, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32
    assert loaded.config == cb.config
    assert dict(loaded.info) == json.loads(json.dumps(dict(cb.info)))
    assert manifest["version"] == "rqk-test-1"
    assert manifest["created_at"] == "2026-11-01T03:00:00+00:00"
    assert manifest["input_fingerprint"] == input_fingerprint(x, ids)
    assert manifest["metrics"]["utilisation"] == metrics(x, cb.train_codes, cb)["utilisation"]
    assert sorted(p.name for p in saved.iterdir()) == [TENSORS_FILE, MANIFEST_FILE]  # no temp files left


def test_corrupted_shape_in_json_names_the_file(saved):
    path = saved / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["k_per_level"][1] = 9
    path.write_text(json.dumps(manifest))
    with pytest.raises(CodebookFormatError, match=r"codebook\.json") as err:
        load(saved)
    assert "level_1" in str(err.value) and "(9, 8)" in str(err.value)


def test_corrupted_dim_and_levels(saved):
    path = saved / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "dim": 7}))
    with pytest.raises(CodebookFormatError, match=str(path)):
        load(saved)
    path.write_text(json.dumps({**manifest, "levels": 3}))
    with pytest.raises(CodebookFormatError, match="k_per_level"):
        load(saved)


def test_unreadable_or_missing_json(saved, tmp_path):
    (saved / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(CodebookFormatError, match=r"codebook\.json.*not valid JSON"):
        load(saved)
    with pytest.raises(CodebookFormatError, match="not found"):
        load(tmp_path / "nowhere")


def test_swapped_tensor_file_is_detected(saved, data, tmp_path):
    _, _, cb = data
    other = fit(
        np.random.default_rng(1).normal(size=(400, 8)).astype(np.float32), RQKMeansConfig(levels=2, codes_per_level=8)
    )
    save(other, tmp_path / "other", version="other")
    (saved / TENSORS_FILE).write_bytes((tmp_path / "other" / TENSORS_FILE).read_bytes())
    with pytest.raises(CodebookFormatError, match=r"centroids\.safetensors.*sha256"):
        load(saved)


def test_fingerprint_tracks_values_ids_and_shape(data):
    x, ids, _ = data
    fp = input_fingerprint(x, ids)
    assert fp == input_fingerprint(x.copy(), list(ids)) and len(fp) == 64
    y = x.copy()
    y[0, 0] += 1e-3
    assert input_fingerprint(y, ids) != fp
    assert input_fingerprint(x, [*ids[:-1], "other"]) != fp
    assert input_fingerprint(x.reshape(800, 4), ids + ids) != fp  # same matrix bytes, other shape


def test_save_requires_a_version(tmp_path, data):
    with pytest.raises(ValueError, match="version"):
        save(data[2], tmp_path / "cb", version="")
