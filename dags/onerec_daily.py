"""onerec_daily: the daily data plane of the generative recommender.

ingest -> validate_bronze -> sequences -> validate_sequences -> feast_apply ->
feast_materialize (checks online == gold) -> training_examples ->
validate_training_examples -> report. Each task calls one function of
``jobs.stages``; the work lives in ``jobs/`` and ``expectations/``. Run conf:
``{"config": "local", "set": ["source.format=movielens_atomic", ...]}``.
A critical data-quality failure stops everything downstream of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, dag, task

from jobs import stages

DEFAULT_ARGS = {
    "owner": "onerec",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="onerec_daily",
    schedule="@daily",
    start_date=datetime(2026, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["onerec", "data-plane"],
    doc_md=__doc__,
)
def onerec_daily():
    @task(outlets=[Asset("onerec://bronze/events")])
    def ingest(ds=None, dag_run=None):
        """Raw files of the day -> bronze events/items/users; bad rows -> quarantine."""
        return stages.ingest(ds, dag_run.conf)

    @task(retries=0)
    def validate_bronze(ds=None, dag_run=None):
        """GX checkpoints for bronze events, items and users."""
        return stages.validate(["events", "items", "users"], ds, dag_run.conf)

    @task(outlets=[Asset("onerec://gold/user_features")])
    def sequences(ds=None, dag_run=None):
        """Incremental lifelong history MERGE and the gold feature snapshot."""
        return stages.sequences(ds, dag_run.conf)

    @task(retries=0)
    def validate_sequences(ds=None, dag_run=None):
        """GX checkpoints for user_history and user_features."""
        return stages.validate(["user_history", "user_features"], ds, dag_run.conf)

    @task
    def feast_apply(ds=None, dag_run=None):
        """Register the Feast repo over the gold tables (idempotent, plan logged)."""
        return stages.feast_apply(ds, dag_run.conf)

    @task(outlets=[Asset("onerec://online/user_features")])
    def feast_materialize(ds=None, dag_run=None):
        """Materialise the day online, then check online values equal the gold table's."""
        return stages.feast_materialize(ds, dag_run.conf)

    @task(outlets=[Asset("onerec://gold/training_examples")])
    def training_examples(ds=None, dag_run=None):
        """next_day and leave_one_out examples as of the day."""
        return stages.training_examples(ds, dag_run.conf)

    @task(retries=0)
    def validate_training_examples(ds=None, dag_run=None):
        """GX checkpoint for training_examples."""
        return stages.validate(["training_examples"], ds, dag_run.conf)

    @task
    def report(ds=None, dag_run=None):
        """The day's HTML + JSON run report under the reports folder."""
        return stages.report(ds, dag_run.conf)

    (
        ingest()
        >> validate_bronze()
        >> sequences()
        >> validate_sequences()
        >> feast_apply()
        >> feast_materialize()
        >> training_examples()
        >> validate_training_examples()
        >> report()
    )


onerec_daily()
