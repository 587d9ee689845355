"""serving.recommend and serving.serve: a saved generator serves real, distinct, titled items; unknown
users and users with only unknown items get the labelled cold-start answer (CPU, a few seconds)."""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np
import pytest
import torch

from models import checkpoint
from models.config import tiny
from models.continual import ItemSpace
from models.onerec import build
from serving.recommend import Recommender, render

N_ITEMS = 25


class DictFeatures:
    """The online store as two dicts."""

    def __init__(self, users: dict, titles: dict) -> None:
        self.users, self._titles = users, titles

    def user(self, user_id):
        return self.users.get(user_id)

    def titles(self, item_ids):
        return {i: self._titles.get(i) for i in item_ids}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A random tiny generator saved like the daily train stage saves it (checkpoint + items/)."""
    rng = np.random.default_rng(0)
    every = np.array(list(itertools.product(range(8), range(8), range(3))))
    codes = np.concatenate([np.zeros((1, 3), dtype=np.int64), every[rng.choice(len(every), N_ITEMS, replace=False)]])
    space = ItemSpace(["", *[f"i{n}" for n in range(1, N_ITEMS + 1)]], codes, 8, "cb-test")
    cfg = dataclasses.replace(tiny().onerec, n_items=N_ITEMS, dedup_codes=3)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("ckpt") / "best"
    checkpoint.save(directory, build(cfg, codes), model_config=cfg, rng=False)
    space.save(directory / "items")
    return directory


@pytest.fixture
def features():
    now = int(time.time())
    users = {
        "42": {"short_item_ids": ["i3", "i7", "i9"], "short_ts": [now - 600, now - 300, now - 60],
               "positive_item_ids": ["i3", "i9"], "item_ids": ["i1", "i3", "i7", "i9"]},
        "stranger": {"short_item_ids": ["zzz"], "short_ts": [now], "positive_item_ids": [], "item_ids": ["zzz"]},
    }  # fmt: skip
    return DictFeatures(users, {f"i{n}": f"Title {n}" for n in range(1, N_ITEMS + 1)})


@pytest.fixture
def recommender(saved, features):
    return Recommender.from_checkpoint(saved, features, popular=["i5", "i2", "i11", "i1"], beam_size=12)


def test_known_user_gets_k_distinct_real_items_with_titles(recommender):
    answer = recommender.recommend("42", k=10)
    assert answer.source == "model" and not answer.cold_start and answer.reason is None
    ids = [it.item_id for it in answer.items]
    assert len(ids) == len(set(ids)) == 10
    assert set(ids) <= {f"i{n}" for n in range(1, N_ITEMS + 1)}
    assert all(it.title == f"Title {it.item_id[1:]}" for it in answer.items)
    scores = [it.score for it in answer.items]
    assert scores == sorted(scores, reverse=True)
    assert answer.context == {"short": 3, "positive": 2, "lifelong": 4}
    assert answer.model_version == "best" and answer.latency_ms > 0


def test_the_answer_is_deterministic(recommender):
    assert recommender.recommend("42", 5).items == recommender.recommend("42", 5).items


def test_unknown_user_gets_popular_items_labelled_cold_start(recommender):
    answer = recommender.recommend("never-seen", k=3)
    assert answer.cold_start and answer.source == "popular" and "no features online" in answer.reason
    assert [it.item_id for it in answer.items] == ["i5", "i2", "i11"]
    assert answer.items[0].title == "Title 5" and answer.items[0].score is None
    assert "COLD START" in render(answer)


def test_user_with_only_unknown_items_is_cold_start_too(recommender):
    answer = recommender.recommend("stranger", k=2)
    assert answer.cold_start and "known to the model" in answer.reason


def test_http_endpoint(recommender):
    from fastapi.testclient import TestClient

    from serving.serve import create_app

    client = TestClient(create_app(recommender))
    assert client.get("/healthz").json() == {"status": "ok", "model_version": "best", "items": N_ITEMS}
    body = client.get("/recommend/42", params={"k": 4}).json()
    assert body["source"] == "model" and len(body["items"]) == 4 and body["items"][0]["title"].startswith("Title")
    cold = client.get("/recommend/nobody").json()
    assert cold["cold_start"] is True and cold["source"] == "popular"
    assert client.get("/recommend/42", params={"k": 0}).status_code == 422
    assert client.get("/recommend/42", params={"k": 10_000}).status_code == 422
    assert client.get("/recommend/a%20b").status_code == 422  # ids are validated, not trusted


def test_cli_prints_the_answer(saved, features, monkeypatch, capsys):
    from serving import recommend

    monkeypatch.setattr(recommend, "load", lambda cfg, ckpt=None: Recommender.from_checkpoint(ckpt, features))
    assert recommend.main(["--user", "42", "-k", "3", "--checkpoint", str(saved), "--config", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "model best" in out and out.count("Title") == 3


def test_a_checkpoint_scored_with_its_item_head_is_served_reranked(tmp_path, features):
    """The serving path ranks as the checkpoint was evaluated: ``train_config.item_weight``."""
    cfg = dataclasses.replace(tiny().onerec, n_items=N_ITEMS, dedup_codes=3, item_loss_weight=1.0)
    rng = np.random.default_rng(0)
    every = np.array(list(itertools.product(range(8), range(8), range(3))))
    codes = np.concatenate([np.zeros((1, 3), dtype=np.int64), every[rng.choice(len(every), N_ITEMS, replace=False)]])
    torch.manual_seed(0)
    directory = tmp_path / "best"
    checkpoint.save(directory, build(cfg, codes), model_config=cfg, rng=False,
                    train_config=dataclasses.replace(tiny().train, item_weight=1.0))  # fmt: skip
    ItemSpace(["", *[f"i{n}" for n in range(1, N_ITEMS + 1)]], codes, 8, "cb-test").save(directory / "items")
    served = Recommender.from_checkpoint(directory, features, beam_size=N_ITEMS)
    assert served.item_weight == 1.0
    plain = Recommender(served.model, served.space, features, [], beam_size=N_ITEMS)
    before = plain.recommend("42", k=5).items[0].item_id
    batch, _ = served.context("42", features.user("42"), time.time())
    favourite = 25 if before != "i25" else 24
    with torch.no_grad():  # an item head that clearly prefers one item: the rerank must put it first
        user = served.model.encode_context(batch)["user"][0]
        served.model.context.items.ids.weight[favourite] += 100 * user / user.norm() ** 2
    assert served.recommend("42", k=5).items[0].item_id == f"i{favourite}"
    assert plain.recommend("42", k=5).items[0].item_id == before  # the beam alone does not see the head


def test_a_pathway_checkpoint_reads_its_feature_service_and_refuses_another(tmp_path, saved):
    """A checkpoint trained on onerec_train_v3 rows is fed the four pathways by models.pathways; a reader
    of another service is refused at load, naming both."""
    from serving.recommend import FeatureServiceMismatch

    space = ItemSpace.load(saved / "items")
    cfg = dataclasses.replace(tiny().onerec, n_items=N_ITEMS, dedup_codes=3, user_attr_names=("gender",),
                              user_count_features=("n_events",), user_attr_sizes=(65, 17))  # fmt: skip
    torch.manual_seed(0)
    directory = tmp_path / "v3"
    checkpoint.save(directory, build(cfg, space.codes), model_config=cfg, rng=False,
                    versions={"feature_service": "onerec_serve_v3"})  # fmt: skip
    space.save(directory / "items")
    now = int(time.time())
    row = {"n_events": 7, "attributes": '{"gender": "f"}', "short_item_ids": ["i3", "i7"], "short_ts": [now - 60, now],
           "short_flags": [1, 0], "short_rating": [float("nan"), 4.0], "short_play_seconds": [1.0, 2.0],
           "short_duration_seconds": [2.0, 2.0], "positive_item_ids": ["i3"], "item_ids": ["i1", "i9", "zzz"]}  # fmt: skip
    feats = DictFeatures({"42": row}, {})
    feats.service_name = "onerec_serve_v3"
    answer = Recommender.from_checkpoint(directory, feats, beam_size=12).recommend("42", k=5)
    assert answer.source == "model" and answer.context == {"short": 2, "positive": 1, "lifelong": 2}
    assert len({it.item_id for it in answer.items}) == 5
    feats.service_name = "onerec_serve_v1"
    with pytest.raises(
        FeatureServiceMismatch, match="trained on onerec_serve_v3 but this server reads onerec_serve_v1"
    ):
        Recommender.from_checkpoint(directory, feats)
