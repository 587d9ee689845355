"""bench.pathways' pure parts: the variants it trains and the summary it prints."""

import numpy as np
import pandas as pd
import pytest

from bench import pathways


def test_variants_switch_one_pathway_off_each():
    plan = pathways.variants()
    assert list(plan) == ["all", "-static", "-short", "-positive", "-lifelong"]
    assert plan["all"] == [] and plan["-lifelong"] == ["model.pathways.lifelong=false"]
    assert pathways.variants(("short",)) == {"all": [], "-short": ["model.pathways.short=false"]}
    with pytest.raises(ValueError, match="unknown pathway"):
        pathways.variants(("long",))


def test_summary_means_stds_and_changes_against_all():
    def valid(r10, n10):
        return {"recall@10": r10, "ndcg@10": n10, "recall@5": r10 / 2, "ndcg@5": n10 / 2, "n_users": 100}

    summary = pathways.summarise({"all": [valid(0.2, 0.1), valid(0.3, 0.2)], "-short": [valid(0.1, 0.05)]})
    assert summary["all"]["recall@10"] == pytest.approx(0.25)
    assert summary["all"]["recall@10_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert summary["-short"]["recall@10_std"] == 0.0 and summary["-short"]["seeds"] == 1
    assert summary["-short"]["recall@10_delta"] == pytest.approx(-0.15)
    assert summary["-short"]["ndcg@10_delta"] == pytest.approx(-0.1)
    table = pathways.format_table(summary).splitlines()
    assert len(table) == 3 and table[2].split()[0] == "-short" and "-0.1500" in table[2]


def test_coverage_counts_validation_rows_with_a_non_empty_pathway():
    rows = pd.DataFrame({
        "split": ["valid", "valid", "valid", "test"],
        "attributes": ['{"age": "25"}', "{}", None, '{"age": "30"}'],
        "short_item_ids": [np.array(["a"]), np.array(["b", "c"]), np.array([]), np.array(["d"])],
        "positive_item_ids": [np.array([]), None, np.array([]), np.array(["d"])],
        "item_ids": [float("nan"), np.array(["x"]), None, np.array(["y"])],
    })  # fmt: skip
    assert pathways.pathway_coverage(rows) == {"static": 0.3333, "short": 0.6667, "positive": 0.0, "lifelong": 0.3333}


def test_the_json_keeps_four_fields_of_the_training_log():
    line = {"step": 600, "loss": 0.8, "steps_per_s": 30.0, "wall_s": 9.5, "grad_norm": 1.2, "lr": 3e-4}
    assert pathways.train_summary(line) == {"step": 600, "loss": 0.8, "steps_per_s": 30.0, "wall_s": 9.5}
