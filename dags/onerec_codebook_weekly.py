"""onerec_codebook_weekly: retrain the item alignment model and rebuild the semantic-ID codebook.

item_pairs -> validate_item_pairs -> item_alignment (retrain: a new embedding model
version, every item re-embedded) -> validate_item_embeddings -> codebook (full
RQ-KMeans fit, a new codebook version; ``gold.item_sid_mapping`` maps each item's
previous semantic ID to its new one) -> validate_codebook -> feast_apply ->
feast_materialize (the rewritten item rows go online) -> maintenance (OPTIMIZE with
Z-order, deletion-vector purge, VACUUM: jobs/maintenance.py) -> report.

Between weekly runs ``onerec_daily`` only encodes new items with the current codebook,
so existing items keep their IDs; this DAG is where IDs may move, and the mapping
table says how. ``item_pairs`` is computed for the day when the daily run has not
written it yet (the same rows as the daily run's), so the retrain never reads a missing partition. Scheduled
``@weekly``; trigger it by hand for any day with
``python -m dags.runner run --dag onerec_codebook_weekly --ds <day>``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, dag, task

from conf.settings import load_settings
from dags.common import START_DATE, default_args, lake_writers, table_asset
from jobs import stages

DEFAULT_ARGS = default_args(timedelta(minutes=1))


@dag(
    dag_id="onerec_codebook_weekly",
    schedule="@weekly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["onerec", "data-plane", "codebook"],
    doc_md=__doc__,
)
def onerec_codebook_weekly():
    @task(outlets=[table_asset("item_pairs")])
    def item_pairs(ds=None, dag_run=None):
        """Co-engagement pairs of the day (the alignment's training signal), unless the daily run wrote them."""
        return stages.item_pairs(ds, dag_run.conf, if_missing=True)

    @task(retries=0)
    def validate_item_pairs(ds=None, dag_run=None):
        """GX checkpoint for item_pairs."""
        return stages.validate(["item_pairs"], ds, dag_run.conf)

    @task(outlets=[table_asset("item_embeddings")])
    def item_alignment(ds=None, dag_run=None):
        """Retrain the alignment model (new version) and re-embed every item with it."""
        return stages.item_alignment(ds, dag_run.conf, retrain=True)

    @task(retries=0)
    def validate_item_embeddings(ds=None, dag_run=None):
        """GX checkpoint for item_embeddings (width, no NaN/inf, unit norm)."""
        return stages.validate(["item_embeddings"], ds, dag_run.conf)

    @task(outlets=[table_asset("item_sids"), table_asset("item_sid_mapping")])
    def codebook(ds=None, dag_run=None):
        """Full RQ-KMeans rebuild: new codebook version, item_sids and the old->new mapping."""
        return stages.semantic_ids(ds, dag_run.conf, mode="full")

    @task(retries=0)
    def validate_codebook(ds=None, dag_run=None):
        """GX checkpoints for the new version's item_sids and the mapping table."""
        return stages.validate(["item_sids", "item_sid_mapping"], ds, dag_run.conf)

    @task
    def feast_apply(ds=None, dag_run=None):
        """Register the Feast repo (idempotent)."""
        return stages.feast_apply(ds, dag_run.conf)

    @task(outlets=[Asset("onerec://online/item_features")])
    def feast_materialize(ds=None, dag_run=None):
        """Materialise the day (the re-embedded, re-coded items included) and check online == lake."""
        return stages.feast_materialize(ds, dag_run.conf)

    @task
    def maintenance(ds=None, dag_run=None):
        """OPTIMIZE + Z-order, purge deletion vectors, VACUUM (retention from the config); figures in the report."""
        return stages.maintenance(ds, dag_run.conf)

    @task
    def report(ds=None, dag_run=None):
        """The day's run report, with the new codebook's figures."""
        return stages.report(ds, dag_run.conf)

    (
        item_pairs()
        >> validate_item_pairs()
        >> item_alignment()
        >> validate_item_embeddings()
        >> codebook()
        >> validate_codebook()
        >> feast_apply()
        >> feast_materialize()
        >> maintenance()
        >> report()
    )


lake_writers(onerec_codebook_weekly(), load_settings().airflow.lake_pool)
