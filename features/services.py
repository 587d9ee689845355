"""Feature services: the versioned feature sets models read (never ad-hoc lists).

``onerec_train_v1``: point-in-time training retrieval; entity rows carry ``user_id``,
``item_id`` (the target or candidate item) and ``event_timestamp``.
``onerec_serve_v1``: what the generative model sees online for a user (it generates
items itself, so no item features at request time).
``onerec_train_v2`` / ``onerec_serve_v2``: the same plus the item side -- the compressed
lifelong sequence for the user, and for the item its semantic ID (the generation target's
tokens), embedding and statistics. ``onerec_item_v1``: what is known about one item
(content, semantic ID, statistics), for item lookups and candidate explanations.
``onerec_train_v3`` / ``onerec_serve_v3``: OneRec's four pathways (static, short-term with its
signals, positive feedback, compressed lifelong) and nothing else -- the *same* views in the same
order, so a training row retrieved point-in-time from the one carries exactly what the server reads
online from the other (tests/features/test_parity.py). Checkpoints name the version they were
trained on and serving refuses another (``serving.recommend``).
A change of features means a new ``_v<n+1>`` so trained models keep their contract. One exception,
made once: ``user_sequences`` no longer carries the raw lifelong sequence (``lifelong_item_ids``, up
to ``sequences.lifelong_cap`` ids per user and day), because building it made every day cost its
users' whole histories; v1 now has no lifelong sequence, v2 and v3 read its representatives.
"""

from feast import FeatureService

from features.views import (
    item_content,
    item_embeddings,
    item_sids,
    item_stats,
    user_lifelong,
    user_profile,
    user_sequences,
    user_short_signals,
)

onerec_train_v1 = FeatureService(
    name="onerec_train_v1",
    features=[user_profile, user_sequences, item_content],
    description="Training: user profile and sequences as of each example, plus the item's content.",
    owner="onerec-data",
    tags={"version": "1"},
)

onerec_serve_v1 = FeatureService(
    name="onerec_serve_v1",
    features=[user_profile, user_sequences],
    description="Online serving: the user context the generative model conditions on.",
    owner="onerec-data",
    tags={"version": "1"},
)

onerec_train_v2 = FeatureService(
    name="onerec_train_v2",
    features=[user_profile, user_sequences, user_lifelong, item_content, item_sids, item_embeddings, item_stats],
    description="Training with the item side: v1 plus compressed lifelong sequence, item SIDs, embedding, stats.",
    owner="onerec-data",
    tags={"version": "2"},
)

onerec_serve_v2 = FeatureService(
    name="onerec_serve_v2",
    features=[user_profile, user_sequences, user_lifelong],
    description="Online serving: v1 plus the compressed lifelong sequence (OneRec's lifelong pathway).",
    owner="onerec-data",
    tags={"version": "2"},
)

onerec_item_v1 = FeatureService(
    name="onerec_item_v1",
    features=[item_content, item_sids, item_stats],
    description="One item as people and explanations see it: content, semantic ID, statistics.",
    owner="onerec-data",
    tags={"version": "1"},
)

# One list for both v3 services: training and serving cannot drift apart. The lifelong pathway reads
# the representatives (user_lifelong).
PATHWAY_VIEWS_V3 = [
    user_profile,
    user_sequences[["short_item_ids", "short_ts", "short_flags", "positive_item_ids"]],
    user_short_signals,
    user_lifelong,
]

onerec_train_v3 = FeatureService(
    name="onerec_train_v3",
    features=PATHWAY_VIEWS_V3,
    description="Training rows of the four pathways, point in time (entity rows: user_id, event_timestamp).",
    owner="onerec-data",
    tags={"version": "3"},
)

onerec_serve_v3 = FeatureService(
    name="onerec_serve_v3",
    features=PATHWAY_VIEWS_V3,
    description="Online serving: the four pathways, exactly the features onerec_train_v3 trains on.",
    owner="onerec-data",
    tags={"version": "3"},
)
