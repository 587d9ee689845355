"""Candidate vs champion on the same held-out users, gates from config, and the decision record.

``evaluate_checkpoint`` scores one generator checkpoint (with its own item space, so a champion
trained on an older catalogue or codebook is still scored fairly) on the leave-one-out *test*
targets of ``examples``; ``shared_users`` restricts both models to the users whose targets both
can name. ``decide`` applies the gates:

* the primary metric (default ``ndcg@10``) must be >= the champion's - ``primary_tolerance``;
* every metric in ``tolerances`` must be >= the champion's - its tolerance (no metric worse than
  tolerance; for a metric in ``lower_is_better``, <= the champion's + its tolerance); a metric the
  candidate lacks fails its gate, one neither model has (e.g. the sample oracle's on other data) is
  skipped;
* with no champion the candidate is promoted (the first model has nothing to beat).

``record`` writes the decision JSON atomically; the DAG's report reads it from
``<reports_dir>/runs/<ds>/promotion.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from models import data
from models.beam import SemanticIdTrie
from models.continual import ItemSpace, load_generator
from models.policy_eval import Oracle, PolicyReward, generation_metrics
from models.reward import PScore


def shared_users(examples: pd.DataFrame, spaces: list[ItemSpace]) -> pd.DataFrame:
    """Rows of the users all of whose targets exist in every item space (the same users for every model)."""
    known = set.intersection(*(set(s.item_ids[1:]) for s in spaces))
    ok = examples.groupby("user_id")["target_item_id"].agg(lambda t: all(str(x) in known for x in t))
    return examples[examples["user_id"].isin(ok[ok].index)]


@torch.no_grad()
def evaluate_checkpoint(checkpoint_dir: str | Path, examples: pd.DataFrame, pscore: PScore | None = None,
                        reward_item_ids: list[str] | None = None, beam_size: int = 10,
                        device: str = "cpu", oracle: Oracle | None = None) -> dict[str, Any]:  # fmt: skip
    """Promotion metrics of a generator checkpoint (``<dir>/items`` = its ItemSpace) on the test split
    (with the ground truth's ``oracle_*`` figures when an ``oracle`` is given)."""
    checkpoint_dir = Path(checkpoint_dir)
    space = ItemSpace.load(checkpoint_dir / "items")
    model = load_generator(checkpoint_dir).to(device)
    loo = data.from_training_examples(examples, space.index)
    test = data.eval_examples(loo, "test", model.cfg)
    trie = SemanticIdTrie.from_item_codes(space.codes, model.cfg.level_sizes)
    reward = PolicyReward(pscore, reward_item_ids or [], space.item_ids) if pscore is not None else None
    return generation_metrics(model, test, space.codes, trie, reward, beam_size=beam_size, device=device,
                              oracle=oracle, user_ids=loo.users, item_ids=space.item_ids)  # fmt: skip


def decide(candidate: dict[str, float], champion: dict[str, float] | None, primary: str = "ndcg@10",
           primary_tolerance: float = 0.0, tolerances: dict[str, float] | None = None,
           lower_is_better: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """``{"promote", "reason", "gates": [...]}``; each gate says metric, values, threshold and whether it passed."""
    if champion is None:
        return {"promote": True, "reason": "no champion yet: the first candidate is promoted", "gates": []}
    rules = {primary: primary_tolerance, **{m: t for m, t in (tolerances or {}).items() if m != primary}}
    gates = []
    for metric, tol in rules.items():
        cand, champ = candidate.get(metric), champion.get(metric)
        if champ is None and cand is None and metric != primary:  # neither has it (no oracle): not a gate here
            continue
        if champ is None:  # the champion never measured it (older metrics): nothing to compare
            gates.append({"metric": metric, "candidate": cand, "champion": None, "passed": True,
                          "note": "champion has no value"})  # fmt: skip
            continue
        lower = metric in lower_is_better
        threshold = champ + tol if lower else champ - tol
        passed = cand is not None and (cand <= threshold if lower else cand >= threshold)
        gates.append({"metric": metric, "primary": metric == primary, "candidate": cand, "champion": champ,
                      "tolerance": tol, "threshold": threshold, "passed": bool(passed)})  # fmt: skip
    failed = [g for g in gates if not g["passed"]]
    if failed:
        reason = "rejected: " + "; ".join(
            f"{g['metric']} {_fmt(g['candidate'])} {'>' if g['metric'] in lower_is_better else '<'} champion "
            f"{_fmt(g['champion'])} {'+' if g['metric'] in lower_is_better else '-'} {g['tolerance']}"
            for g in failed
        )
    else:
        reason = (
            f"all {len(gates)} gates passed ({primary} {_fmt(candidate.get(primary))} vs {_fmt(champion[primary])})"
        )
    return {"promote": not failed, "reason": reason, "gates": gates}


def _fmt(x: float | None) -> str:
    return "missing" if x is None else f"{x:.4f}"


def record(path: str | Path, decision: dict[str, Any]) -> Path:
    """Write the decision JSON (temp file + os.replace: a reader never sees half a decision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(decision, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path
