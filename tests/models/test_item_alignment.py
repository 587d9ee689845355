"""Item alignment: aligned vectors retrieve held-out co-engaged partners at least as well as raw content."""

import numpy as np
import pytest

from conf.settings import SampleSettings
from jobs import sample_data
from jobs.text_encoder import HashingTextEncoder, attribute_vectors, item_text
from models import item_alignment as ia


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread is several times faster than two on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sample_items():
    """Content vectors and top-10 co-engagement pairs of a small world drawn by jobs.sample_data.

    Pairs mimic gold.item_pairs: items watched back to back in a session (< 30 min apart),
    scored by cosine on co-occurrence, top 10 per item.
    """
    s = SampleSettings(n_users=300, n_items=300, n_clusters=8, days=10)
    world = sample_data.build_world(s)
    records = sample_data.item_records(world, np.random.default_rng([s.seed, 2]))
    text = HashingTextEncoder(384).encode([item_text(r["title"], r["description"], r["categories"]) for r in records])
    attrs = attribute_vectors([r["attributes"] for r in records], 4096, 32, 0)
    content = np.concatenate([text, attrs, np.zeros((len(records), 64), np.float32)], axis=1)
    n = len(records)
    co = np.zeros((n, n))
    for day in range(s.days):
        log = sample_data.simulate_day(world, day, np.random.default_rng([s.seed, 3, day]))
        same = (log.user[1:] == log.user[:-1]) & (np.diff(log.second) < 1800) & (log.item[1:] != log.item[:-1])
        np.add.at(co, (log.item[:-1][same], log.item[1:][same]), 1)
    co = co + co.T
    pop = co.sum(axis=1)
    cos = co / np.sqrt(np.outer(pop, pop) + 1e-9)
    pairs = [(i, j) for i in range(n) for j in np.argsort(-cos[i], kind="stable")[:10] if cos[i, j] > 0]
    return content, np.array(pairs)


def test_aligned_beats_raw_content_on_held_out_pairs(sample_items):
    content, pairs = sample_items
    cfg = ia.AlignmentConfig(holdout=0.2, epochs=25)
    model, report = ia.fit_and_evaluate(content, pairs, cfg)
    assert report["n_holdout_pairs"] > 100
    assert report["recall@10_aligned"] >= report["recall@10_raw"], report
    vecs = ia.embed(model, content)
    assert vecs.shape == (len(content), 64) and np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_checkpoint_round_trip_without_pickle(tmp_path, sample_items):
    content, pairs = sample_items
    cfg = ia.AlignmentConfig(epochs=1, hidden=32, out_dim=16)
    model, _ = ia.train(content, pairs[:50], cfg)
    ia.save(model, tmp_path, metrics={"note": "x"})
    assert {p.name for p in tmp_path.iterdir()} == {ia.WEIGHTS_FILE, ia.CONFIG_FILE}
    loaded, meta = ia.load(tmp_path)
    assert meta["metrics"] == {"note": "x"} and loaded.cfg == cfg
    np.testing.assert_array_equal(ia.embed(loaded, content[:20]), ia.embed(model, content[:20]))
    (tmp_path / ia.WEIGHTS_FILE).write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="sha256"):
        ia.load(tmp_path)


def test_info_nce_masks_repeated_items():
    import torch

    z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    ids = torch.tensor([0, 1, 2, 0])
    # Item 0 appears twice as anchor and as positive: the loss stays finite and no row is all-masked.
    loss = ia.info_nce(z, z, ids, ids, 0.1, None)
    assert torch.isfinite(loss)
