"""Feature services: the versioned feature sets models read (never ad-hoc lists).

``onerec_train_v1``: point-in-time training retrieval; entity rows carry ``user_id``,
``item_id`` (the target or candidate item) and ``event_timestamp``.
``onerec_serve_v1``: what the generative model sees online for a user (it generates
items itself, so no item features at request time).
A change of features means a new ``_v2`` so trained models keep their contract.
"""

from feast import FeatureService

from features.views import item_content, user_profile, user_sequences

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
