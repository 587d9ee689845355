"""What the model stages read and share: Delta tables as pandas, run folders, registry look-ups.

Tables are read through the Delta log with ``deltalake``'s DataFusion reader (SQL filters on partition
columns), so model work needs no Spark session. ``version_before`` is what makes a re-run of a
day idempotent: stages start from the champion / reward version made for an *earlier* day.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from conf.settings import Settings


def run_dir(cfg: Settings, ds: date) -> Path:
    return Path(cfg.resolve(cfg.model.work_dir)) / ds.isoformat()


def write_json(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return payload


def read_table(cfg: Settings, table: str, where: str | None = None, order_by: str | None = None):
    """A table as pandas, through the Delta log (``where``: SQL on its columns; ``order_by``: sort keys;
    see models.delta_read)."""
    from models.continual import read_delta

    return read_delta(cfg.table_path(table), where, cfg.lake_storage_options(), order_by=order_by)


def examples_table(cfg: Settings) -> str:
    """The table the generator trains and is evaluated on: ``training_features`` (the four pathways,
    point-in-time from the feature store) unless ``model.pathways.from_feature_store`` is off."""
    return "training_features" if cfg.model.pathways.from_feature_store else "training_examples"


def read_examples(cfg: Settings, ds: date):
    """``examples_table``'s leave_one_out rows of ``ds`` (the same reader models.continual's CLI uses)."""
    from models.continual import read_examples as read

    return read(cfg.table_path(examples_table(cfg)), ds.isoformat(), cfg.lake_storage_options())


def feature_versions(cfg: Settings) -> dict[str, str]:
    """What a checkpoint's manifest says about its inputs: the feature services it was trained on and
    that serving must read (``serving.recommend`` refuses another); empty for sequence training."""
    p = cfg.model.pathways
    return {"feature_service": p.serve_service, "training_service": p.train_service} if p.from_feature_store else {}


def pathway_fields(cfg: Settings, examples, champion_config=None) -> dict:
    """The generator's pathway fields: the champion's when continuing from it (the same model), else
    from the config and the day's feature rows (``models.continual.pathway_fields``); {} for sequences."""
    from models.continual import PATHWAY_FIELDS
    from models.continual import pathway_fields as fields

    p = cfg.model.pathways
    if not p.from_feature_store:
        return {}
    if champion_config is not None:
        return {k: getattr(champion_config, k) for k in (*PATHWAY_FIELDS, "attr_buckets", "count_buckets")}
    return fields(examples, p.user_attributes, p.counts, p.masked, p.attribute_buckets)


def read_events(cfg: Settings, ds: date, days: int):
    """bronze.events of the ``days`` days ending on ``ds``."""
    first = ds - timedelta(days=days - 1)
    # In key order: the reward model trained on them must not depend on the files' order.
    return read_table(cfg, "events", f"event_date BETWEEN DATE '{first}' AND DATE '{ds}'", order_by="event_id")


def registries(cfg: Settings):
    """The generator's and the reward model's registered models (MLflow, ``cfg.mlflow``)."""
    from models.registry import registry_for

    return registry_for(cfg), registry_for(cfg, "reward")


def version_before(registry, alias: str, ds: date):
    """The version ``alias`` pointed at most recently among those made for a day before ``ds``."""
    current = registry.get(alias)
    if current is None or current.versions.get("ds", "") < ds.isoformat():
        return current
    for event in reversed(registry.history()):
        if event.get("alias") == alias and event.get("version"):
            v = registry.version(event["version"])
            if v.versions.get("ds", "") < ds.isoformat():
                return v
    return None


def reward_model(cfg: Settings, ds: date):
    """``(P-Score model, its item ids, version, last training day)`` of the newest version trained on days
    strictly *before* ``ds`` -- never the one trained through ``ds``, whose data holds ds's held-out
    targets (``models/leakage.py``). ``(None, [], None, None)`` when there is none yet."""
    from models import reward

    _, rewards = registries(cfg)
    prev = version_before(rewards, "current", ds)
    if prev is None:
        return None, [], None, None
    model, manifest = reward.load(prev.path)
    return model, manifest["item_ids"], prev.version, date.fromisoformat(str(prev.versions["ds"]))


def heldout_examples(loo, model_cfg, through: date | None):
    """``(test, valid contexts)`` of ``loo`` a reward model trained through ``through`` never saw: the users
    whose targets come after that day (all users when there is no reward model). Checked, not assumed."""
    from models import data, leakage

    test, contexts = data.eval_examples(loo, "test", model_cfg), data.eval_examples(loo, "valid", model_cfg)
    if through is None:
        return test, contexts
    first_unseen = leakage.cutoff(through)
    test, contexts = leakage.after(test, first_unseen), leakage.after(contexts, first_unseen)
    for held_out in (test, contexts):
        leakage.check_unseen(held_out, first_unseen)
    return test, contexts


def sample_oracle(cfg: Settings):
    """The simulator oracle when the source is the bundled sample (its MANIFEST.json says so), else None."""
    from jobs.sample_oracle import SampleOracle

    return SampleOracle.from_source(cfg.resolve(cfg.source.path))


def feedback_events(cfg: Settings, through: date):
    """``(events of the history window ending on through, exposure mask)``: the logged exposures of the
    ``model.align.feedback_days`` days ending on the reward model's last training day -- never a day
    holding the held-out targets."""
    events = read_events(cfg, through, cfg.model.reward.history_days)
    first = through - timedelta(days=cfg.model.align.feedback_days - 1)
    return events, (events["event_date"] >= first).to_numpy()


def set_threads(cfg: Settings) -> None:
    import torch

    torch.set_num_threads(max(1, cfg.model.threads))


def item_space(cfg: Settings, day: date):
    """The generator's item space: gold.item_sids of the newest codebook version on or before ``day``."""
    from jobs.semantic_ids import codebook_root, codebook_versions
    from models import codebook_io
    from models.continual import ItemSpace

    versions = codebook_versions(codebook_root(cfg), day)
    if not versions:
        raise FileNotFoundError(f"no codebook on or before {day}: run jobs.semantic_ids first")
    version = versions[-1]
    k = max(codebook_io.read_manifest(codebook_root(cfg) / version)["k_per_level"])
    return ItemSpace.from_sids(read_table(cfg, "item_sids", f"codebook_version = '{version}'"), version, k)


def business_values(cfg: Settings, day: date, space) -> Any:
    """Per-item business value: mean duration-aware play percentile - 0.5 (down-weights bait content)."""
    import numpy as np

    from models.reward_shaping import duration_aware_reward

    events = read_events(cfg, day, cfg.model.reward.history_days)
    value = np.zeros(len(space.item_ids), dtype=np.float32)
    if {"play_seconds", "item_duration_seconds"} <= set(events.columns):
        pct, _ = duration_aware_reward(events["play_seconds"].to_numpy(float),
                                       events["item_duration_seconds"].to_numpy(float))  # fmt: skip
        means = events.assign(p=pct).groupby("item_id")["p"].mean()
        for item, mean in means.dropna().items():
            if item in space.index:
                value[space.index[item]] = mean - 0.5
    return value
