"""Feature views: which columns of which source are served, and for how long they hold.

Fields are typed from ``jobs/schemas.py`` (``features.fields``); tests check that
every field is a column of its table with a compatible type.

TTLs. A gold row is a user's state as of the end of its ``ds`` and stays their state
until they act again (a new row). An inactive user's sequences and profile are still
the right model input weeks later, so the TTL is long: 365 days bounds how far back a
point-in-time join looks (and so what it scans) while covering seasonal returners.
Item content changes only when the catalogue does, so items get ten years (in effect
no expiry, but still a bounded PIT scan). The same holds for an item's semantic ID and
embedding: a row stays the item's value until a later run writes a new one (a new
codebook version, a re-embedding), however long that takes, and a model must be able
to decode every item it may generate, so they expire no sooner than the content.
Item statistics are cumulative counts as of the item's last active day: still true
later, but an item idle for a year is better served as unknown (a cold item) than
with year-old popularity, so they get the users' 365 days. The compressed lifelong
sequence is user state like the others (365 days).
"""

from datetime import timedelta

from feast import FeatureView

from features.entities import item, user
from features.fields import fields_from
from features.sources import (
    bronze_items,
    gold_item_embeddings,
    gold_item_sids,
    gold_item_stats,
    gold_user_features,
    gold_user_lifelong,
)
from jobs.schemas import ITEM_EMBEDDINGS, ITEM_SIDS, ITEM_STATS, ITEMS, USER_FEATURES, USER_LIFELONG_COMPRESSED

USER_TTL = timedelta(days=365)
ITEM_TTL = timedelta(days=3650)
ITEM_STATS_TTL = timedelta(days=365)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=USER_TTL,
    schema=fields_from(
        USER_FEATURES,
        ["n_events", "n_positive", "active_days", "tenure_days", "attributes"],
        {"attributes": "static user attributes as a JSON object of strings"},
    ),
    source=gold_user_features,
    online=True,
    description="Counts, activity and static attributes of a user as of the end of a day.",
    owner="onerec-data",
    tags={"lake_table": "user_features"},
)

user_sequences = FeatureView(
    name="user_sequences",
    entities=[user],
    ttl=USER_TTL,
    schema=fields_from(
        USER_FEATURES,
        ["short_item_ids", "short_ts", "short_flags", "positive_item_ids", "positive_ts"],
        {
            "short_item_ids": "last sequences.short_term_len items, oldest first",
            "short_ts": "unix seconds of short_item_ids",
            "short_flags": "engagement bitmask per short item (like=1 follow=2 comment=4 share=8 dislike=16)",
            "positive_item_ids": "last sequences.positive_len positive-feedback items",
        },
    ),
    source=gold_user_features,
    online=True,
    description="Behaviour sequences of a user as of the end of a day (the model's context).",
    owner="onerec-data",
    tags={"lake_table": "user_features"},
)

user_short_signals = FeatureView(
    name="user_short_signals",
    entities=[user],
    ttl=USER_TTL,
    schema=fields_from(
        USER_FEATURES,
        ["short_rating", "short_play_seconds", "short_duration_seconds"],
        {
            "short_rating": "rating per short item; NaN where the event has none",
            "short_play_seconds": "play time per short item; NaN where the event has none",
            "short_duration_seconds": "item duration per short item; NaN where the event has none",
        },
    ),
    source=gold_user_features,
    online=True,
    description="Per-interaction signals of the short-term sequence, aligned with user_sequences.short_item_ids.",
    owner="onerec-data",
    tags={"lake_table": "user_features"},
)

item_content = FeatureView(
    name="item_content",
    entities=[item],
    ttl=ITEM_TTL,
    schema=fields_from(
        ITEMS,
        ["title", "description", "categories", "attributes", "image_path"],
        {"attributes": "item attributes as a JSON object of strings"},
    ),
    source=bronze_items,
    online=True,
    description="Catalogue content of an item (current version).",
    owner="onerec-data",
    tags={"lake_table": "items"},
)

user_lifelong = FeatureView(
    name="user_lifelong",
    entities=[user],
    ttl=USER_TTL,
    schema=fields_from(
        USER_LIFELONG_COMPRESSED,
        ["item_ids", "n_source"],
        {
            "item_ids": "<= item.lifelong.max_representatives representatives of the lifelong sequence",
            "n_source": "distinct lifelong items (with an embedding) they stand for",
        },
    ),
    source=gold_user_lifelong,
    online=True,
    description="Compressed lifelong sequence (hierarchical k-means representatives) as of the end of a day.",
    owner="onerec-data",
    tags={"lake_table": "user_lifelong_compressed"},
)

item_sids = FeatureView(
    name="item_sids",
    entities=[item],
    ttl=ITEM_TTL,
    schema=fields_from(
        ITEM_SIDS,
        ["codes", "codebook_version"],
        {"codes": "semantic ID: one code per codebook level, then the dedup code"},
    ),
    source=gold_item_sids,
    online=True,
    description="An item's semantic ID in the newest codebook version that holds it.",
    owner="onerec-data",
    tags={"lake_table": "item_sids"},
)

item_embeddings = FeatureView(
    name="item_embeddings",
    entities=[item],
    ttl=ITEM_TTL,
    schema=fields_from(
        ITEM_EMBEDDINGS,
        ["embedding", "embedding_source", "model_version"],
        {"embedding": "unit vector (aligned content, else behaviour, else cold)"},
    ),
    source=gold_item_embeddings,
    online=True,
    description="An item's current embedding, what the semantic IDs were computed from.",
    owner="onerec-data",
    tags={"lake_table": "item_embeddings"},
)

item_stats = FeatureView(
    name="item_stats",
    entities=[item],
    ttl=ITEM_STATS_TTL,
    schema=fields_from(
        ITEM_STATS,
        ["n_events", "n_users", "n_positive", "positive_rate", "first_seen", "last_seen"],
        {"positive_rate": "n_positive / n_events, all history up to the day"},
    ),
    source=gold_item_stats,
    online=True,
    description="Interactions, distinct users and positive rate of an item as of its last active day.",
    owner="onerec-data",
    tags={"lake_table": "item_stats"},
)
