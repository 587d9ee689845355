"""One Spark schema per table: the single source of truth for columns and types.

The GX suites (expectations/suites.py), the Feast views (features/) and the jobs
all read these; tests/test_schemas.py checks that they agree.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

FLAG_NAMES = ("like", "follow", "comment", "share", "dislike")
# Engagement flags packed as one int per interaction in gold sequences (bit i = FLAG_NAMES[i]).
FLAG_BITS = {name: 1 << i for i, name in enumerate(FLAG_NAMES)}


def _f(name: str, dtype, nullable: bool = True) -> StructField:
    return StructField(name, dtype, nullable)


EVENTS = StructType(
    [
        _f("event_id", StringType(), False),
        _f("user_id", StringType(), False),
        _f("item_id", StringType(), False),
        _f("ts", TimestampType(), False),
        _f("rating", DoubleType()),
        _f("play_seconds", DoubleType()),
        _f("item_duration_seconds", DoubleType()),
        *[_f(flag, IntegerType()) for flag in FLAG_NAMES],
        _f("source_file", StringType(), False),
        _f("source_line", LongType(), False),
        _f("event_date", DateType(), False),
    ]
)

ITEMS = StructType(
    [
        _f("item_id", StringType(), False),
        _f("title", StringType()),
        _f("description", StringType()),
        _f("categories", ArrayType(StringType())),
        _f("attributes", MapType(StringType(), StringType())),
        _f("image_path", StringType()),
        _f("image_vector", ArrayType(FloatType())),
        _f("content_hash", StringType(), False),
        _f("source_file", StringType(), False),
        _f("updated_ds", DateType(), False),
    ]
)

USERS = StructType(
    [
        _f("user_id", StringType(), False),
        _f("attributes", MapType(StringType(), StringType())),
        _f("content_hash", StringType(), False),
        _f("source_file", StringType(), False),
        _f("updated_ds", DateType(), False),
    ]
)

QUARANTINE = StructType(
    [
        _f("source_table", StringType(), False),  # events | items | users
        _f("source_file", StringType(), False),
        _f("source_line", LongType(), False),
        _f("raw", StringType()),
        _f("reason", StringType(), False),
        _f("event_date", DateType()),  # null where the row's date could not be read
    ]
)

# Fields nested in arrays are nullable: Spark cannot cast nested nullability away,
# and rows read back from Delta come with nullable nested fields.
HISTORY_EVENT = StructType(
    [
        _f("ts", TimestampType()),
        _f("item_id", StringType()),
        _f("event_date", DateType()),
        _f("rating", DoubleType()),
        _f("play_seconds", DoubleType()),
        _f("item_duration_seconds", DoubleType()),
        _f("flags", IntegerType()),
        _f("positive", BooleanType()),
    ]
)

USER_EVENTS = StructType(
    [
        _f("user_id", StringType(), False),
        _f("event_date", DateType(), False),  # the partition: one chunk per (user, day)
        _f("events", ArrayType(HISTORY_EVENT), False),  # the day's events, sorted by (ts, item_id)
        _f("n_events", LongType(), False),
        _f("n_positive", LongType(), False),
    ]
)

USER_STATE = StructType(
    [
        _f("user_id", StringType(), False),
        # the last recent_len events dated before last_date, then every event of last_date
        _f("recent", ArrayType(HISTORY_EVENT), False),
        _f("positives", ArrayType(HISTORY_EVENT), False),  # the last positive_len positive events
        _f("n_events", LongType(), False),
        _f("n_positive", LongType(), False),
        _f("active_days", LongType(), False),
        _f("first_date", DateType(), False),
        _f("last_date", DateType(), False),  # the state is as of the end of this day
        _f("first_ts", TimestampType(), False),
        _f("last_ts", TimestampType(), False),
    ]
)

USER_FEATURES = StructType(
    [
        _f("user_id", StringType(), False),
        _f("event_timestamp", TimestampType(), False),  # end of ds: when these values became true
        _f("n_events", LongType(), False),
        _f("n_positive", LongType(), False),
        _f("active_days", IntegerType(), False),
        _f("tenure_days", IntegerType(), False),
        _f("attributes", MapType(StringType(), StringType())),
        _f("short_item_ids", ArrayType(StringType()), False),
        _f("short_ts", ArrayType(LongType()), False),
        _f("short_rating", ArrayType(DoubleType(), True), False),
        _f("short_play_seconds", ArrayType(DoubleType(), True), False),
        _f("short_duration_seconds", ArrayType(DoubleType(), True), False),
        _f("short_flags", ArrayType(IntegerType()), False),
        _f("positive_item_ids", ArrayType(StringType()), False),
        _f("positive_ts", ArrayType(LongType()), False),
        # No lifelong sequence: it is assembled from the day chunks only by the lifelong compression
        # (jobs/lifelong.py), so a day's snapshot costs its users' bounded state, not their history.
        _f("ds", DateType(), False),
    ]
)

TRAINING_EXAMPLES = StructType(
    [
        _f("user_id", StringType(), False),
        _f("split", StringType(), False),  # leave_one_out: train|valid|test; next_day: target
        _f("context_item_ids", ArrayType(StringType()), False),
        _f("context_ts", ArrayType(LongType()), False),
        _f("target_item_id", StringType(), False),  # point-wise target (first item of the session)
        _f("target_item_ids", ArrayType(StringType()), False),  # session-wise target
        _f("target_ts", LongType(), False),
        _f("protocol", StringType(), False),
        _f("ds", DateType(), False),
    ]
)

# training_examples' keys and targets, the time the features are read at (the target's), the feature
# service, and its features as retrieved point-in-time (jobs/training_features.py; names as Feast's).
TRAINING_FEATURES = StructType(
    [
        _f("user_id", StringType(), False),
        _f("split", StringType(), False),
        _f("target_item_id", StringType(), False),
        _f("target_item_ids", ArrayType(StringType()), False),
        _f("target_ts", LongType(), False),
        _f("event_timestamp", TimestampType(), False),  # = target_ts: the features the server had then
        _f("feature_service", StringType(), False),
        _f("n_events", LongType()),  # null: no features yet (a user's first day)
        _f("n_positive", LongType()),
        _f("active_days", IntegerType()),
        _f("tenure_days", IntegerType()),
        _f("attributes", StringType()),  # JSON object, as the online store serves it
        _f("short_item_ids", ArrayType(StringType())),
        _f("short_ts", ArrayType(LongType())),
        _f("short_flags", ArrayType(IntegerType())),
        _f("positive_item_ids", ArrayType(StringType())),
        _f("short_rating", ArrayType(DoubleType())),  # NaN: the event has no rating
        _f("short_play_seconds", ArrayType(DoubleType())),
        _f("short_duration_seconds", ArrayType(DoubleType())),
        _f("item_ids", ArrayType(StringType())),  # lifelong representatives (gold.user_lifelong_compressed)
        _f("n_source", LongType()),
        _f("protocol", StringType(), False),
        _f("ds", DateType(), False),
    ]
)

ITEM_PAIRS = StructType(
    [
        _f("item_id", StringType(), False),
        _f("other_item_id", StringType(), False),
        _f("score", DoubleType(), False),  # Swing (or cosine) score, popularity-normalised
        _f("co_count", LongType(), False),  # distinct users who co-engaged the pair in the window
        _f("ds", DateType(), False),  # pairs from history as of the end of ds
    ]
)

ITEM_EMBEDDINGS = StructType(
    [
        _f("item_id", StringType(), False),
        _f("content_vector", ArrayType(FloatType(), True)),  # [text | attributes | image]; null: no content
        _f("behaviour_vector", ArrayType(FloatType(), True)),  # from the item-pair graph; null: no pairs
        _f("embedding", ArrayType(FloatType(), True), False),  # what semantic_ids / lifelong use
        _f("embedding_source", StringType(), False),  # content | behaviour | cold
        _f("content_hash", StringType(), False),  # bronze.items.content_hash ("" for ID-only items)
        _f("model_version", StringType(), False),
        _f("ds", DateType(), False),  # the run that wrote this row
    ]
)

ITEM_SIDS = StructType(
    [
        _f("item_id", StringType(), False),
        _f("codes", ArrayType(IntegerType(), True), False),  # L codes + 1 dedup code; unique per version
        _f("codebook_version", StringType(), False),
        _f("ds", DateType(), False),  # the run that assigned this item's codes
    ]
)

ITEM_SID_MAPPING = StructType(
    [
        _f("item_id", StringType(), False),
        _f("old_version", StringType(), False),
        _f("old_codes", ArrayType(IntegerType(), True), False),
        _f("new_version", StringType(), False),
        _f("new_codes", ArrayType(IntegerType(), True), False),
    ]
)

USER_LIFELONG_COMPRESSED = StructType(
    [
        _f("user_id", StringType(), False),
        _f("ds", DateType(), False),
        _f("item_ids", ArrayType(StringType(), True), False),  # <= max_representatives, by last occurrence
        _f("n_source", LongType(), False),  # distinct lifelong items with an embedding, before compression
    ]
)

ITEM_STATS = StructType(
    [
        _f("item_id", StringType(), False),
        _f("ds", DateType(), False),  # stats as of the end of ds, for items with events on ds
        _f("n_events", LongType(), False),  # interactions up to the end of ds
        _f("n_events_ds", LongType(), False),  # interactions on ds
        _f("n_users", LongType(), False),  # distinct users up to the end of ds
        _f("n_positive", LongType(), False),  # positive (or signal-free implicit) interactions
        _f("positive_rate", DoubleType(), False),  # n_positive / n_events
        _f("first_seen", TimestampType(), False),
        _f("last_seen", TimestampType(), False),
    ]
)

ITEM_STATE = StructType(
    [
        _f("item_id", StringType(), False),
        _f("n_events", LongType(), False),  # every interaction up to the end of last_date
        _f("n_users", LongType(), False),
        _f("n_positive", LongType(), False),
        _f("first_seen", TimestampType(), False),
        _f("last_seen", TimestampType(), False),
        _f("last_date", DateType(), False),  # the totals are as of the end of this day
    ]
)

USER_ITEMS = StructType(
    [
        _f("item_id", StringType(), False),
        _f("user_id", StringType(), False),
        _f("first_date", DateType(), False),  # the day the user first interacted with the item
    ]
)

BY_TABLE = {
    "events": EVENTS,
    "items": ITEMS,
    "users": USERS,
    "quarantine": QUARANTINE,
    "user_events": USER_EVENTS,
    "user_state": USER_STATE,
    "user_features": USER_FEATURES,
    "training_examples": TRAINING_EXAMPLES,
    "training_features": TRAINING_FEATURES,
    "item_pairs": ITEM_PAIRS,
    "item_embeddings": ITEM_EMBEDDINGS,
    "item_sids": ITEM_SIDS,
    "item_sid_mapping": ITEM_SID_MAPPING,
    "user_lifelong_compressed": USER_LIFELONG_COMPRESSED,
    "item_stats": ITEM_STATS,
    "item_state": ITEM_STATE,
    "user_items": USER_ITEMS,
}
