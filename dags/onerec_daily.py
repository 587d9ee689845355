"""onerec_daily: the daily data plane of the generative recommender.

User side: ingest -> validate_bronze -> sequences -> validate_sequences.
Item side, after the sequences (pairs read silver.user_events):
item_pairs -> validate_item_pairs -> item_alignment -> item_embeddings ->
validate_item_embeddings -> semantic_ids -> validate_item_sids -> lifelong ->
validate_lifelong; item_stats -> validate_item_stats runs beside them (bronze only).
Then feast_apply -> feast_materialize (user and item views; checks online == gold)
-> training_examples -> validate_training_examples.
Models (jobs.model_stages): train (after the examples and the SIDs) and reward_refresh
(after bronze) -> align -> evaluate -> promote -> report. train and align run in the
GPU pool/queue named by ``airflow.gpu_pool`` / ``airflow.gpu_queue``.

``item_alignment`` comes before ``item_embeddings``: it trains an alignment model only
when none exists for the embedding config (the first day; otherwise it is skipped with
the reason logged, and ``onerec_codebook_weekly`` retrains), and a new model re-embeds
the catalogue, so the daily ``item_embeddings`` then embeds only new or changed items
with a model that exists. ``semantic_ids`` encodes new items with the current codebook
(a full fit only when there is none). Each task calls one function of ``jobs.stages``;
the work lives in ``jobs/`` and ``expectations/``. Run conf:
``{"config": "local", "set": ["source.format=movielens_atomic", ...]}``.
A critical data-quality failure stops everything downstream of it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, dag, task

from conf.settings import load_settings
from dags.common import START_DATE, default_args, lake_writers, table_asset
from jobs import model_stages, stages

# Only where GPU tasks run (pool, Celery queue) is read at parse time; everything else per run.
AIRFLOW = load_settings().airflow

DEFAULT_ARGS = default_args(timedelta(seconds=30))


@dag(
    dag_id="onerec_daily",
    schedule="@daily",
    start_date=START_DATE,
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
        """The day's history chunk, the bounded per-user state MERGE and the gold feature snapshot."""
        return stages.sequences(ds, dag_run.conf)

    @task(retries=0)
    def validate_sequences(ds=None, dag_run=None):
        """GX checkpoints for user_events[ds], user_state and user_features[ds]."""
        return stages.validate(["user_events", "user_state", "user_features"], ds, dag_run.conf)

    @task(outlets=[table_asset("item_pairs")])
    def item_pairs(ds=None, dag_run=None):
        """Co-engagement pairs (Swing) over the trailing window -> gold.item_pairs[ds]."""
        return stages.item_pairs(ds, dag_run.conf)

    @task(retries=0)
    def validate_item_pairs(ds=None, dag_run=None):
        """GX checkpoint for item_pairs (no self pairs, scores positive, top-k per item)."""
        return stages.validate(["item_pairs"], ds, dag_run.conf)

    @task(outlets=[table_asset("item_embeddings")])  # when it trains, it re-embeds every item
    def item_alignment(ds=None, dag_run=None):
        """Train the alignment model (and re-embed) only when none exists; else skipped, reason logged."""
        return stages.item_alignment(ds, dag_run.conf)

    @task(outlets=[table_asset("item_embeddings")])
    def item_embeddings(ds=None, dag_run=None):
        """Embed new, changed and newly-warm items with the current model -> gold.item_embeddings."""
        return stages.item_embeddings(ds, dag_run.conf)

    @task(retries=0)
    def validate_item_embeddings(ds=None, dag_run=None):
        """GX checkpoint for item_embeddings (width, no NaN/inf, unit norm)."""
        return stages.validate(["item_embeddings"], ds, dag_run.conf)

    @task(outlets=[table_asset("item_sids")])
    def semantic_ids(ds=None, dag_run=None):
        """Encode new items with the current codebook (full fit only when none) -> gold.item_sids."""
        return stages.semantic_ids(ds, dag_run.conf)

    @task(retries=0)
    def validate_item_sids(ds=None, dag_run=None):
        """GX checkpoint for the current codebook's item_sids (unique tuples, codes in range, utilisation)."""
        return stages.validate(["item_sids"], ds, dag_run.conf)

    @task(outlets=[table_asset("user_lifelong_compressed")])
    def lifelong(ds=None, dag_run=None):
        """Compress active users' lifelong sequences to <= N representatives -> gold.user_lifelong_compressed."""
        return stages.lifelong(ds, dag_run.conf)

    @task(retries=0)
    def validate_lifelong(ds=None, dag_run=None):
        """GX checkpoint for user_lifelong_compressed (cap)."""
        return stages.validate(["user_lifelong_compressed"], ds, dag_run.conf)

    @task(outlets=[table_asset("item_stats")])
    def item_stats(ds=None, dag_run=None):
        """Interactions, users, positive rate, first/last seen of the day's items -> gold.item_stats[ds]."""
        return stages.item_stats(ds, dag_run.conf)

    @task(retries=0)
    def validate_item_stats(ds=None, dag_run=None):
        """GX checkpoint for item_stats."""
        return stages.validate(["item_stats"], ds, dag_run.conf)

    @task
    def feast_apply(ds=None, dag_run=None):
        """Register the Feast repo over the gold tables (idempotent, plan logged)."""
        return stages.feast_apply(ds, dag_run.conf)

    @task(outlets=[Asset("onerec://online/user_features"), Asset("onerec://online/item_features")])
    def feast_materialize(ds=None, dag_run=None):
        """Materialise the day's user and item rows online, then check online values equal the lake's."""
        return stages.feast_materialize(ds, dag_run.conf)

    @task(outlets=[Asset("onerec://gold/training_examples")])
    def training_examples(ds=None, dag_run=None):
        """next_day and leave_one_out examples as of the day."""
        return stages.training_examples(ds, dag_run.conf)

    @task(retries=0)
    def validate_training_examples(ds=None, dag_run=None):
        """GX checkpoint for training_examples."""
        return stages.validate(["training_examples"], ds, dag_run.conf)

    @task(pool=AIRFLOW.gpu_pool, queue=AIRFLOW.gpu_queue)
    def train(ds=None, dag_run=None):
        """Continue the champion on the day's leave-one-out examples (full retrain on a new codebook)."""
        return model_stages.train(ds, dag_run.conf)

    @task
    def reward_refresh(ds=None, dag_run=None):
        """P-Score reward model: next-day AUC on the new day, then trained on it (versioned)."""
        return model_stages.reward_refresh(ds, dag_run.conf)

    @task(pool=AIRFLOW.gpu_pool, queue=AIRFLOW.gpu_queue)
    def align(ds=None, dag_run=None):
        """ECPO (or DPO) of the day's candidate against the reward model; metrics before/after."""
        return model_stages.align(ds, dag_run.conf)

    @task
    def evaluate(ds=None, dag_run=None):
        """Candidate vs champion on the same held-out users: Recall/NDCG, reward, legal rate, coverage."""
        return model_stages.evaluate(ds, dag_run.conf)

    @task(retries=0, outlets=[Asset("onerec://models/champion")])
    def promote(ds=None, dag_run=None):
        """Gates from model.promote; atomic champion switch or a rejection with the failed gates."""
        return model_stages.promote(ds, dag_run.conf)

    @task
    def report(ds=None, dag_run=None):
        """The day's HTML + JSON run report under the reports folder (codebook section included)."""
        return stages.report(ds, dag_run.conf)

    bronze_ok = ingest() >> validate_bronze()
    pairs, items_done = item_pairs(), validate_lifelong()
    bronze_ok >> sequences() >> validate_sequences() >> pairs
    (
        pairs
        >> validate_item_pairs()
        >> item_alignment()
        >> item_embeddings()
        >> validate_item_embeddings()
        >> semantic_ids()
        >> validate_item_sids()
        >> lifelong()
        >> items_done
    )
    stats_done = bronze_ok >> item_stats() >> validate_item_stats()
    online = [items_done, stats_done] >> feast_apply() >> feast_materialize()
    examples_ok = online >> training_examples() >> validate_training_examples()
    trained, rewarded = train(), reward_refresh()
    examples_ok >> trained
    bronze_ok >> rewarded
    [trained, rewarded] >> align() >> evaluate() >> promote() >> report()


lake_writers(onerec_daily(), AIRFLOW.lake_pool)
