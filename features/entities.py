"""Entities: what a feature row describes. Ids are strings everywhere (raw contract)."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A user of the recommender (bronze.users / events user_id).",
    owner="onerec-data",
    tags={"layer": "gold"},
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalogue item (bronze.items item_id).",
    owner="onerec-data",
    tags={"layer": "bronze"},
)
