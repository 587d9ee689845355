"""Feature views: which columns of which source are served, and for how long they hold.

Fields are typed from ``jobs/schemas.py`` (``features.fields``); tests check that
every field is a column of its table with a compatible type.

TTLs. A gold row is a user's state as of the end of its ``ds`` and stays their state
until they act again (a new row). An inactive user's sequences and profile are still
the right model input weeks later, so the TTL is long: 365 days bounds how far back a
point-in-time join looks (and so what it scans) while covering seasonal returners.
Item content changes only when the catalogue does, so items get ten years (in effect
no expiry, but still a bounded PIT scan).
"""

from datetime import timedelta

from feast import FeatureView

from features.entities import item, user
from features.fields import fields_from
from features.sources import bronze_items, gold_user_features
from jobs.schemas import ITEMS, USER_FEATURES

USER_TTL = timedelta(days=365)
ITEM_TTL = timedelta(days=3650)

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
        ["short_item_ids", "short_ts", "short_flags", "positive_item_ids", "positive_ts", "lifelong_item_ids"],
        {
            "short_item_ids": "last sequences.short_term_len items, oldest first",
            "short_ts": "unix seconds of short_item_ids",
            "short_flags": "engagement bitmask per short item (like=1 follow=2 comment=4 share=8 dislike=16)",
            "positive_item_ids": "last sequences.positive_len positive-feedback items",
            "lifelong_item_ids": "all items, last sequences.lifelong_cap kept",
        },
    ),
    source=gold_user_features,
    online=True,
    description="Behaviour sequences of a user as of the end of a day (the model's context).",
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
