"""MovieLens 100K in its original GroupLens files (u.data, u.item, u.user)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.loaders._base import BaseLoader
from jobs.loaders._delimited import PIPE, TSV, count_error, delimited_rows, field, split_fields
from jobs.loaders._frames import attributes_json, contract
from jobs.loaders._lines import decoded_lines, not_blank
from jobs.raw_contract import INTERACTION_FIELDS, ITEM_FIELDS, USER_FIELDS

# The 19 genre flags of u.item, in file order (README of ML-100K).
GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
DATA_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ITEM_COLUMNS = ("item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES)
# zip_code (not "zip") so user attributes read the same as the RecBole copy's.
USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip_code")


def _required_file(root: str, name: str) -> Path:
    path = Path(root) / name
    if not path.is_file():
        raise FileNotFoundError(f"MovieLens file {path} not found")
    return path


class MovieLensLoader(BaseLoader):
    """movielens: the original ML-100K files under ROOT.

    u.data  tab-separated, no header: user id, item id, rating, unix seconds
    u.item  pipe-separated, latin-1: id|title|release date|video release date|IMDb URL|19 genre
            flags (unknown, Action, ..., Western) -> categories 'Action|Comedy', the rest -> attributes
    u.user  pipe-separated: id|age|gender|occupation|zip -> attributes
    """

    name = "movielens"

    def read_events(self, spark: SparkSession, root: str, ds: date | None, base_date: date) -> DataFrame:
        """Every u.data row (the file is not split by day; ingest filters to ``ds``)."""
        path = str(_required_file(root, "u.data"))
        rows = delimited_rows(spark, [path], DATA_COLUMNS, TSV, header=False)
        values = {c: field(c) for c in DATA_COLUMNS}
        return contract(rows, INTERACTION_FIELDS, values, count_error(len(DATA_COLUMNS)))

    def read_items(self, spark: SparkSession, root: str) -> DataFrame | None:
        """u.item (decoded as latin-1), or None if absent."""
        path = Path(root) / "u.item"
        if not path.is_file():
            return None
        lines = decoded_lines(spark, str(path), "ISO-8859-1").where(not_blank())
        rows = split_fields(lines, ITEM_COLUMNS, PIPE)
        # concat_ws skips nulls, so only the genres flagged '1' are joined.
        genres = F.concat_ws("|", *[F.when(field(g) == "1", F.lit(g)) for g in GENRES])
        values = {
            "item_id": field("item_id"),
            "title": field("title"),
            "categories": F.nullif(genres, F.lit("")),
            "attributes": attributes_json({c: field(c) for c in ("release_date", "video_release_date", "imdb_url")}),
        }
        return contract(rows, ITEM_FIELDS, values, count_error(len(ITEM_COLUMNS)))

    def read_users(self, spark: SparkSession, root: str) -> DataFrame | None:
        """u.user, or None if absent."""
        path = Path(root) / "u.user"
        if not path.is_file():
            return None
        rows = delimited_rows(spark, [str(path)], USER_COLUMNS, PIPE, header=False)
        values = {"user_id": field("user_id"), "attributes": attributes_json({c: field(c) for c in USER_COLUMNS[1:]})}
        return contract(rows, USER_FIELDS, values, count_error(len(USER_COLUMNS)))
