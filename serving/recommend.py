"""Recommendations for one user: online features -> champion generator -> constrained beam search -> items.

    python -m serving.recommend --user 42 -k 10 [--checkpoint DIR] [--config local] [--json]

The user's context -- OneRec's four pathways, the feature service the checkpoint was trained on
(its manifest's ``versions.feature_service``, e.g. ``onerec_serve_v3``) -- is read from the Feast
online store and turned into the model's input by ``models.pathways.pathway_arrays``, the function
training used on the point-in-time rows of the same features. A server configured for another
feature service refuses the checkpoint (``FeatureServiceMismatch``, exit code 2). The
 the champion of MLflow's model registry (alias ``champion``, or ``--checkpoint``)
generates semantic IDs with beam search constrained to IDs that exist, which map back to items;
titles come from the online store too (``item_content``). A user with no features online, or
none of whose items the model knows, gets a **cold-start** answer: the most popular items
(``gold.item_stats``, distinct users), labelled as such. Exit code 0 with an answer, 2 when
there is no model or no store.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str | None
    score: float | None = None  # sum of log-probabilities of its semantic-ID tokens (model answers)


@dataclass(frozen=True)
class Answer:
    """What a request gets: the items, and how they were chosen."""

    user_id: str
    items: list[Item]
    source: str  # "model" | "popular"
    cold_start: bool
    reason: str | None = None  # why the answer is a cold-start one
    model_version: str | None = None
    context: dict[str, int] = field(default_factory=dict)  # known items per pathway
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FeatureServiceMismatch(ValueError):
    """The checkpoint was trained on other features than the server reads (never served silently)."""


class FeatureReader(Protocol):
    """Where the online features come from (Feast in production, a dict in tests); ``service`` names
    the feature service it reads (None: unspecified, e.g. a test double)."""

    service_name: str | None

    def user(self, user_id: str) -> Mapping[str, Any] | None: ...

    def titles(self, item_ids: Sequence[str]) -> dict[str, str | None]: ...


class FeastReader:
    """The Feast online store: ``service_name`` for users, ``item_content:title`` for items."""

    def __init__(self, store, service_name: str = "onerec_serve_v1") -> None:
        self.store, self.service_name = store, service_name
        self.service = store.get_feature_service(service_name)

    def user(self, user_id: str) -> Mapping[str, Any] | None:
        row = self.store.get_online_features(features=self.service, entity_rows=[{"user_id": user_id}])
        values = row.to_dict(include_event_timestamps=True)
        if not any(v[0] for k, v in values.items() if k.endswith("__ts")):
            return None  # never materialised: unknown user
        return {k: v[0] for k, v in values.items()}

    def titles(self, item_ids: Sequence[str]) -> dict[str, str | None]:
        if not item_ids:
            return {}
        rows = [{"item_id": i} for i in item_ids]
        out = self.store.get_online_features(features=["item_content:title"], entity_rows=rows).to_dict()
        return dict(zip(out["item_id"], out["title"], strict=True))


def _tail(ids: Sequence[int], length: int) -> np.ndarray:
    """The last ``length`` ids, left-padded with 0 (the layout the model was trained on)."""
    from models.pathways import tail

    return tail(ids, length)


def check_feature_service(trained_on: str | None, served: str | None, version: str | None = None) -> None:
    """Raise ``FeatureServiceMismatch`` unless the server reads the features the checkpoint was trained on."""
    if served is None or trained_on == served:
        return
    what = f"checkpoint {version}" if version else "the checkpoint"
    trained = trained_on or "sequences, no feature service (a checkpoint from before onerec_serve_v3)"
    raise FeatureServiceMismatch(
        f"{what} was trained on {trained} but this server reads {served}: serve a checkpoint trained on "
        f"{served}, or set model.pathways.feature_service_version to the checkpoint's version"
    )


class Recommender:
    """One loaded generator and its item space; thread-safe ``recommend``."""

    def __init__(self, model, space, features: FeatureReader, popular: Sequence[str], version: str | None = None,
                 beam_size: int = 20, item_weight: float = 0.0, feature_service: str | None = None) -> None:  # fmt: skip
        """``item_weight``: rerank the beam with the model's item head (``beam.rerank``), as evaluated;
        ``feature_service``: the one the model was trained on (None: a sequence-trained checkpoint)."""
        check_feature_service(feature_service, getattr(features, "service_name", None), version)
        self.feature_service = feature_service
        from models.beam import SemanticIdTrie

        self.model, self.space, self.features = model.eval(), space, features
        self.cfg = model.cfg
        self.trie = SemanticIdTrie.from_item_codes(space.codes, self.cfg.level_sizes)
        self.index = space.index
        self.popular = list(popular)
        self.version, self.beam_size, self.item_weight = version, beam_size, item_weight
        self._lock = threading.Lock()  # one forward at a time: torch already uses every core

    @classmethod
    def from_checkpoint(cls, directory: str | Path, features: FeatureReader, popular: Sequence[str] = (),
                        version: str | None = None, beam_size: int = 20) -> Recommender:  # fmt: skip
        """Load ``directory`` (config.json + model.safetensors + items/), no pickle anywhere."""
        from models.checkpoint import read_manifest
        from models.continual import ItemSpace, load_generator

        directory = Path(directory)
        space = ItemSpace.load(directory / "items")
        manifest = read_manifest(directory)
        trained = manifest.get("train_config") or {"fields": {}}
        weight = trained["fields"].get("item_weight", 0.0)  # rank as the checkpoint was evaluated
        service = (manifest.get("versions") or {}).get("feature_service")
        check_feature_service(service, getattr(features, "service_name", None), version or directory.name)
        return cls(load_generator(directory), space, features, popular, version or directory.name, beam_size, weight,
                   service)  # fmt: skip

    def context(self, user_id: str, feats: Mapping[str, Any], now: float):
        """(the model's batch of one, known items per pathway) from the online features; None when the
        model knows none of the user's items."""
        if self.feature_service is not None:  # the four pathways, as training built them
            from models.pathways import known_counts, pathway_arrays

            arrays = pathway_arrays({k: [v] for k, v in feats.items()}, [user_id], [now], self.cfg, self.index)
            counts = known_counts(arrays)
            if not any(counts.values()):
                return None
            return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, counts
        from models.data import gap_bucket, user_buckets

        def known(name: str) -> list[int]:
            return [self.index[i] for i in (feats.get(name) or []) if i in self.index]

        short_ids = [i for i in (feats.get("short_item_ids") or []) if i in self.index]
        short_ts = dict(zip(feats.get("short_item_ids") or [], feats.get("short_ts") or [], strict=False))
        # the lifelong sequence as the feature store serves it: its representatives (user_lifelong:item_ids)
        short, pos, life = known("short_item_ids"), known("positive_item_ids"), known("item_ids")
        if not (short or pos or life):
            return None
        cfg = self.cfg
        short_arr = _tail(short, cfg.short_len)
        ages = _tail([int(now - (short_ts.get(i) or now)) for i in short_ids], cfg.short_len)
        batch = {
            "user": user_buckets([user_id], cfg.n_user_buckets),
            "short_items": short_arr[None],
            "pos_items": _tail(pos, cfg.pos_len)[None],
            "life_items": _tail(life, cfg.lifelong_len)[None],
            "short_gap": np.where(short_arr > 0, gap_bucket(ages, cfg.n_gap_buckets), 0)[None],
        }
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in batch.items()}
        return tensors, {"short": len(short), "positive": len(pos), "lifelong": len(life)}

    def _popular(self, user_id: str, k: int, reason: str) -> Answer:
        top = self.popular[:k]
        titles = self.features.titles(top)
        items = [Item(i, titles.get(i)) for i in top]
        return Answer(user_id, items, "popular", True, reason, self.version)

    def recommend(self, user_id: str, k: int = 10) -> Answer:
        """Top-``k`` items for ``user_id`` (cold start: the popular items, labelled)."""
        from models.beam import beam_search

        t0 = time.perf_counter()
        feats = self.features.user(user_id)
        if feats is None:
            answer = self._popular(user_id, k, "no features online for this user (new, or not materialised yet)")
        else:
            built = self.context(user_id, feats, time.time())
            if built is None:
                answer = self._popular(user_id, k, "none of the user's items is known to the model")
            else:
                with self._lock:
                    found = beam_search(self.model, built[0], self.trie, max(self.beam_size, k), top_k=k,
                                        item_weight=self.item_weight)  # fmt: skip
                answer = self._model_answer(user_id, found, built[1])
        return Answer(**{**answer.__dict__, "latency_ms": round((time.perf_counter() - t0) * 1000, 3)})

    def _model_answer(self, user_id: str, found, context: dict[str, int]) -> Answer:
        pairs = [(int(i), float(s)) for i, s in zip(found.items[0], found.scores[0], strict=True) if int(i) > 0]
        ids = [self.space.item_ids[i] for i, _ in pairs]
        titles = self.features.titles(ids)
        items = [Item(item_id, titles.get(item_id), round(score, 4)) for item_id, (_, score) in zip(ids, pairs,
                                                                                                 strict=True)]  # fmt: skip
        return Answer(user_id, items, "model", False, None, self.version, context)


def popular_items(cfg, limit: int = 1000) -> list[str]:
    """Items by distinct users (then events, then id) as of their latest ``gold.item_stats`` day; [] if absent."""
    from deltalake.exceptions import TableNotFoundError

    from models.continual import read_delta  # honours deletion vectors (Spark-written tables use them)

    try:
        stats = read_delta(cfg.table_path("item_stats"))
    except (TableNotFoundError, FileNotFoundError):
        return []
    latest = stats.sort_values("ds").groupby("item_id", as_index=False).last()
    latest = latest.sort_values(["n_users", "n_events", "item_id"], ascending=[False, False, True])
    return latest["item_id"].astype(str).head(limit).tolist()


def champion_dir(cfg, checkpoint: str | None) -> tuple[Path, str]:
    """``--checkpoint`` if given, else the version MLflow's registry names by alias
    (``models:/<generator_model>@champion``); (directory, version label)."""
    if checkpoint:
        return Path(checkpoint), Path(checkpoint).name
    from models.registry import registry_for

    registry = registry_for(cfg)
    champion = registry.get("champion")
    if champion is None:
        raise LookupError(f"no champion yet ({registry.uri('champion')} is not set): run the daily DAG (make run) "
                          "or pass --checkpoint")  # fmt: skip
    return Path(champion.path), champion.version


def load(cfg, checkpoint: str | None = None, features: FeatureReader | None = None) -> Recommender:
    """The serving stack the config names: Feast online store, champion, popular items."""
    directory, version = champion_dir(cfg, checkpoint)
    if features is None:
        from jobs.feature_store import get_store
        from models.checkpoint import read_manifest

        p = cfg.model.pathways
        service = p.serve_service if p.from_feature_store else "onerec_serve_v2"  # v2: + lifelong representatives
        trained_on = (read_manifest(directory).get("versions") or {}).get("feature_service")
        check_feature_service(trained_on, service if p.from_feature_store else None, version)
        features = FeastReader(get_store(cfg), trained_on or service)
    beam = getattr(getattr(cfg, "model", None), "beam_size", 20) or 20
    return Recommender.from_checkpoint(directory, features, popular_items(cfg), version, beam)


def render(answer: Answer) -> str:
    """The answer for people: one line per item."""
    head = f"user {answer.user_id!r}: "
    if answer.cold_start:
        head += f"COLD START, popular items ({answer.reason})"
    else:
        head += f"model {answer.model_version}, context {answer.context}"
    lines = [head + f" [{answer.latency_ms} ms]"]
    for rank, item in enumerate(answer.items, 1):
        score = "" if item.score is None else f"  {item.score:8.3f}"
        lines.append(f"{rank:3d}. {item.item_id:<12}{score}  {item.title or '(no title)'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from jobs.cli import base_parser, settings_from_args, setup_logging

    parser = base_parser(__doc__)
    parser.add_argument("--user", required=True, help="user id")
    parser.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    parser.add_argument("--checkpoint", help="a checkpoint dir instead of the registry's champion")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING)
    cfg = settings_from_args(args)
    try:
        recommender = load(cfg, args.checkpoint)
    except (LookupError, FileNotFoundError, FeatureServiceMismatch) as err:
        print(f"cannot serve: {err}", file=sys.stderr)
        return 2
    answer = recommender.recommend(str(args.user), args.k)
    print(json.dumps(answer.to_dict(), indent=2) if args.json else render(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
