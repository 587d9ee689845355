"""The bundled, seeded behaviour sample the demo runs on.

``generate(settings, out_root)`` writes the *canonical layout* (see ``jobs/raw_contract.py``)::

    out_root/interactions/ds=YYYY-MM-DD/part-0.csv   one file per day
    out_root/items/items.jsonl                        the catalogue
    out_root/users/users.csv                          static user attributes
    out_root/MANIFEST.json                            counts + the settings used

The behaviour model is small but carries the signals later stages learn from:

* ``n_clusters`` taste clusters, each a topic with its own English vocabulary; item
  titles and descriptions are drawn from it, so text embeddings separate clusters.
* Items have a Zipf-like popularity inside their cluster, clusters themselves are
  unequally popular, and a few items are released after the first day (with a short
  freshness boost); nothing is watched before its release day.
* Users have a primary and a secondary cluster (plus a little exploration), a
  heavy-tailed activity level and sometimes join after day one.
* Each day a user has Poisson(``sessions_per_user_day`` x activity) sessions of
  ~Geometric(``mean_session_len``) interactions. Inside a session the next item is
  often the previous item's fixed *successor* (the next part of a series, or a
  "related" item): an order a sequential model can learn beyond popularity.
* Outcomes follow a latent user-item affinity: watch ratio (with loop/rewatch above
  1.0), a 1-5 rating, like/comment/share/follow with probabilities rising in affinity
  and an occasional dislike at low affinity.

Each day's CSV ends with ``broken_rows_per_day`` deliberately bad rows, cycling
through :data:`BROKEN_CLASSES`, so quarantine has something to show. Everything
comes from ``numpy.random.default_rng`` seeded by ``settings.seed``: the same
settings give byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from conf.settings import SampleSettings
from jobs.raw_contract import INTERACTION_FIELDS

SECONDS_PER_DAY = 86_400
# Bump when the generator's output changes for the same settings: old samples then regenerate.
GENERATOR_VERSION = 1
CSV_HEADER = ",".join(INTERACTION_FIELDS)
USERS_HEADER = "user_id,age,gender,region"

# The order in which the broken-row generator cycles (row k of the run gets class k % 7).
BROKEN_CLASSES: tuple[str, ...] = (
    "missing_user_id",
    "bad_timestamp",
    "negative_play_seconds",
    "duplicate_row",
    "too_few_fields",
    "rating_out_of_range",
    "wrong_day",
)


@dataclass(frozen=True)
class Topic:
    """One taste cluster's text: its name, sub-categories, vocabulary and typical video length."""

    name: str
    subtopics: tuple[str, ...]
    words: tuple[str, ...]
    median_duration_s: float
    median_age: int


TOPICS: tuple[Topic, ...] = (
    Topic(
        "cooking",
        ("baking", "street food", "vegan"),
        (
            "pasta garlic sourdough bread curry noodles dumplings kitchen recipe oven spicy "
            "chocolate pancakes soup grill salad butter tomato chicken dessert"
        ).split(),
        240,
        38,
    ),
    Topic(
        "football",
        ("premier league", "world cup", "tactics"),
        (
            "goal striker penalty derby midfield keeper league transfer match stadium tactics "
            "dribble freekick champions referee tackle highlights coach fans offside"
        ).split(),
        90,
        30,
    ),
    Topic(
        "travel",
        ("backpacking", "city guides", "road trips"),
        (
            "passport beach island mountains hostel backpacking roadtrip flight luggage tokyo lisbon "
            "camping sunset hiking train itinerary budget village desert coast"
        ).split(),
        420,
        34,
    ),
    Topic(
        "music",
        ("guitar", "hip hop", "classical"),
        (
            "guitar piano chords melody concert album drummer vocals rhythm band playlist jazz "
            "remix lyrics studio violin bass festival tour acoustic"
        ).split(),
        200,
        27,
    ),
    Topic(
        "gaming",
        ("speedruns", "strategy", "esports"),
        (
            "speedrun boss controller console pixel quest dungeon multiplayer shooter strategy loot "
            "arcade esports level raid sandbox retro glitch stream tournament"
        ).split(),
        600,
        23,
    ),
    Topic(
        "pets",
        ("dogs", "cats", "aquariums"),
        (
            "puppy kitten dog cat parrot hamster aquarium grooming leash training vet rescue "
            "adoption paws treats bunny tortoise purring fetch shelter"
        ).split(),
        35,
        36,
    ),
    Topic(
        "fashion",
        ("streetwear", "vintage", "beauty"),
        (
            "outfit sneakers denim jacket vintage runway makeup skincare haircut boots dress "
            "accessories thrift style wardrobe lipstick tailoring hoodie designer silk"
        ).split(),
        60,
        26,
    ),
    Topic(
        "science",
        ("space", "physics", "biology"),
        (
            "galaxy planet telescope quantum atoms rocket orbit experiment fossils volcano chemistry "
            "physics neurons genetics asteroid climate laboratory microscope gravity eclipse"
        ).split(),
        480,
        35,
    ),
    Topic(
        "fitness",
        ("running", "yoga", "strength"),
        (
            "workout squats yoga marathon cardio stretching deadlift protein running pushups muscles "
            "sprint mobility kettlebell pilates cycling endurance posture abs recovery"
        ).split(),
        300,
        31,
    ),
    Topic(
        "movies",
        ("reviews", "trailers", "behind the scenes"),
        (
            "trailer director sequel horror comedy thriller cinema actors screenplay premiere "
            "animation franchise scene soundtrack casting documentary blockbuster villain remake oscars"
        ).split(),
        150,
        32,
    ),
    Topic(
        "technology",
        ("smartphones", "programming", "gadgets"),
        (
            "smartphone laptop python software gadget battery robot keyboard chip coding android "
            "startup drone headphones server algorithm camera app upgrade wireless"
        ).split(),
        360,
        33,
    ),
    Topic(
        "gardening",
        ("houseplants", "vegetables", "landscaping"),
        (
            "tomatoes seeds compost roses succulents soil greenhouse pruning herbs orchids lawn "
            "harvest bonsai watering flowers mulch seedlings cactus vegetables orchard"
        ).split(),
        180,
        47,
    ),
)

# Words any title may borrow: shared across clusters so text alone is not a perfect label.
SHARED_WORDS: tuple[str, ...] = tuple(
    "best easy ultimate guide quick top tips secrets beginner daily simple amazing honest "
    "perfect weekend challenge story first new review".split()
)
ADJECTIVES: tuple[str, ...] = ("fun", "relaxed", "detailed", "quick", "honest", "surprising", "cozy", "energetic")
DESCRIPTION_TEMPLATES: tuple[str, ...] = (
    "A {adj} {bucket} video about {w1} and {w2} for {sub} fans.",
    "Creator {author} explains {w1}, {w2} and {w3} in this {bucket} {topic} clip.",
    "Everything you need to know about {w1} and {w2}, from a {topic} creator.",
    "Watch {w1} meet {w2}: a {adj} take on {sub}.",
)
REGIONS: tuple[str, ...] = ("us", "uk", "de", "fr", "br", "mx", "in", "jp")
REGION_WEIGHTS = np.array([0.28, 0.1, 0.1, 0.08, 0.12, 0.08, 0.16, 0.08])
GENDERS: tuple[str, ...] = ("female", "male", "other")
GENDER_WEIGHTS = np.array([0.48, 0.48, 0.04])
# Relative session starts per UTC hour: quiet nights, a lunch bump, an evening peak.
DIURNAL = np.array([3, 2, 1, 1, 1, 1, 2, 4, 5, 5, 5, 6, 8, 7, 6, 6, 7, 9, 11, 13, 14, 13, 9, 5], dtype=float)

# Behaviour knobs that are not settings: fixed here so the sample stays comparable across runs.
ZIPF_ALPHA = 1.05  # item popularity exponent inside a cluster
CLUSTER_ZIPF_ALPHA = 0.6  # how unequal the clusters' audiences are
NEW_ITEM_SHARE = 0.12  # items released after the first day
NEW_USER_SHARE = 0.12  # users who join after the first day
SERIES_SHARE = 0.25  # items that belong to a multi-part series
EXPLORE = 0.15  # users' mixture mass spread over all clusters
P_SUCCESSOR = 0.35  # next item in a session is the previous item's successor
P_SAME_CLUSTER = 0.4  # ... else another item of the previous item's cluster
FRESHNESS_BOOST = 3.0  # popularity multiplier of an item on its release day, decaying
FRESHNESS_DAYS = 3.0


@dataclass(frozen=True)
class World:
    """The latent structure behind the sample: who likes what, and how items relate.

    Tests read it to check that the behaviour files reflect it (e.g. in-cluster share).
    """

    settings: SampleSettings
    item_cluster: np.ndarray  # int, per item
    item_weight: np.ndarray  # base popularity (Zipf within cluster x cluster audience)
    item_release: np.ndarray  # first day index the item can be watched
    item_successor: np.ndarray  # the item a session tends to continue with (-1: none)
    item_duration: np.ndarray  # seconds
    item_quality: np.ndarray  # shifts everyone's affinity
    item_author: np.ndarray  # author index
    item_series: np.ndarray  # series index or -1
    item_episode: np.ndarray  # 1-based part in the series, 0 when not in one
    user_primary: np.ndarray
    user_secondary: np.ndarray
    user_mixture_cdf: np.ndarray  # (users, clusters) cumulative cluster-choice probabilities
    user_pref: np.ndarray  # (users, clusters) latent preference feeding affinity
    user_activity: np.ndarray  # mean 1, heavy-tailed
    user_join: np.ndarray  # first active day index

    def topic(self, cluster: int) -> Topic:
        return TOPICS[cluster % len(TOPICS)]

    def category(self, cluster: int) -> str:
        """Top-level category of a cluster; clusters beyond the 12 topics reuse one with a suffix."""
        name = self.topic(cluster).name
        return name if cluster < len(TOPICS) else f"{name}-{cluster // len(TOPICS) + 1}"


# ---------------------------------------------------------------------------------------------
# The latent world
# ---------------------------------------------------------------------------------------------


def build_world(settings: SampleSettings) -> World:
    """Draw items, users and their latent tastes from the settings (release/join days need ``days``).

    Uses its own seed stream, so tests can rebuild the truth without replaying any behaviour.
    """
    s = settings
    if s.n_users < 1 or s.days < 1 or s.n_clusters < 1 or s.n_items < s.n_clusters:
        raise ValueError("need n_users >= 1, days >= 1 and n_items >= n_clusters >= 1")
    rng = np.random.default_rng([settings.seed, 1])
    n_c, n_i = settings.n_clusters, settings.n_items
    cluster_weight = _zipf(rng.permutation(n_c), CLUSTER_ZIPF_ALPHA)
    cluster_weight /= cluster_weight.sum()

    # Every cluster gets at least one item; the rest follow the cluster audiences (flattened).
    share = np.sqrt(cluster_weight) / np.sqrt(cluster_weight).sum()
    item_cluster = np.concatenate([np.arange(n_c), rng.choice(n_c, size=n_i - n_c, p=share)])
    item_cluster = item_cluster[rng.permutation(n_i)]
    item_weight = np.zeros(n_i)
    for c in range(n_c):
        members = np.flatnonzero(item_cluster == c)
        item_weight[members] = _zipf(rng.permutation(len(members)), ZIPF_ALPHA) * cluster_weight[c]
    item_release = _release_days(rng, item_cluster, item_weight, settings.days)
    series, episode, successor = _series_and_successors(rng, item_cluster, item_weight, item_release)
    medians = np.array([TOPICS[c % len(TOPICS)].median_duration_s for c in range(n_c)])
    duration = np.clip(np.round(medians[item_cluster] * rng.lognormal(0.0, 0.6, n_i)), 5, 7200)
    quality = rng.normal(0.0, 0.25, n_i)
    author = _authors(rng, item_cluster)

    primary, secondary, mixture_cdf, pref = _user_tastes(rng, settings.n_users, cluster_weight)
    activity = rng.lognormal(0.0, 0.9, settings.n_users)
    activity /= activity.mean()
    join = np.where(rng.random(settings.n_users) < NEW_USER_SHARE, rng.integers(0, settings.days, settings.n_users), 0)
    return World(
        settings=settings,
        item_cluster=item_cluster,
        item_weight=item_weight,
        item_release=item_release,
        item_successor=successor,
        item_duration=duration,
        item_quality=quality,
        item_author=author,
        item_series=series,
        item_episode=episode,
        user_primary=primary,
        user_secondary=secondary,
        user_mixture_cdf=mixture_cdf,
        user_pref=pref,
        user_activity=activity,
        user_join=join,
    )


def _zipf(ranks: np.ndarray, alpha: float) -> np.ndarray:
    """Zipf weight of 0-based ranks."""
    return 1.0 / (ranks.astype(float) + 1.0) ** alpha


def _release_days(rng: np.random.Generator, cluster: np.ndarray, weight: np.ndarray, days: int) -> np.ndarray:
    """Most items exist from day 0; a few arrive later. Each cluster's top item is always there."""
    release = np.where(rng.random(len(cluster)) < NEW_ITEM_SHARE, rng.integers(1, max(days, 2), len(cluster)), 0)
    release = np.minimum(release, days - 1)
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        release[members[np.argmax(weight[members])]] = 0
    return release


def _series_and_successors(
    rng: np.random.Generator, cluster: np.ndarray, weight: np.ndarray, release: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group some items into 2-4 part series (part k -> k+1); give the others a fixed related item.

    The successor is what makes "i is often followed by j" learnable. A series shares the
    release day of its first part, so part 2 is never out before part 1.
    """
    n = len(cluster)
    series = np.full(n, -1)
    episode = np.zeros(n, dtype=int)
    successor = np.full(n, -1)
    n_series = 0
    for c in np.unique(cluster):
        members = rng.permutation(np.flatnonzero(cluster == c))
        pool = list(members[: int(round(len(members) * SERIES_SHARE))])
        while len(pool) >= 2:
            size = min(len(pool), int(rng.integers(2, 5)))
            parts, pool = pool[:size], pool[size:]
            first_release = release[parts].min()
            for k, item in enumerate(parts):
                series[item], episode[item] = n_series, k + 1
                release[item] = first_release
                if k + 1 < size:
                    successor[item] = parts[k + 1]
            n_series += 1
        # Items without a next part point at a popular same-cluster item (not themselves).
        for item in members:
            if successor[item] >= 0 or len(members) < 2:
                continue
            others = members[members != item]
            p = weight[others] / weight[others].sum()
            successor[item] = rng.choice(others, p=p)
    return series, episode, successor


def _authors(rng: np.random.Generator, cluster: np.ndarray) -> np.ndarray:
    """Each cluster has its own few creators; an author publishes in one cluster only."""
    author = np.zeros(len(cluster), dtype=int)
    next_id = 0
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        n_authors = max(2, len(members) // 6)
        # Prolific creators: author choice itself is Zipf-like.
        p = _zipf(np.arange(n_authors), 1.0)
        author[members] = next_id + rng.choice(n_authors, size=len(members), p=p / p.sum())
        next_id += n_authors
    return author


def _user_tastes(
    rng: np.random.Generator, n_users: int, cluster_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Primary cluster by cluster audience, a different secondary, mixture weights and preferences."""
    n_c = len(cluster_weight)
    primary = rng.choice(n_c, size=n_users, p=cluster_weight)
    # Secondary: any other cluster (uniform), so cross-cluster tastes are varied.
    offset = rng.integers(1, max(n_c, 2), n_users)
    secondary = (primary + offset) % n_c if n_c > 1 else primary.copy()
    w_primary = rng.uniform(0.55, 0.8, n_users)
    mixture = np.full((n_users, n_c), EXPLORE / n_c)
    rows = np.arange(n_users)
    mixture[rows, primary] += w_primary
    mixture[rows, secondary] += 1.0 - EXPLORE - w_primary
    pref = rng.normal(0.0, 0.1, (n_users, n_c))
    pref[rows, secondary] += 0.6
    pref[rows, primary] += 1.0 - 0.6 * (secondary == primary)
    cdf = np.cumsum(mixture, axis=1)
    cdf /= cdf[:, -1:]
    return primary, secondary, cdf, pref


# ---------------------------------------------------------------------------------------------
# One simulated day
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayLog:
    """The valid interactions of one day, in time order."""

    user: np.ndarray
    item: np.ndarray
    second: np.ndarray  # seconds since the day's midnight UTC
    rating: np.ndarray
    play: np.ndarray
    flags: np.ndarray  # (n, 5): like, follow, comment, share, dislike


class _ClusterSampler:
    """Draws an item of a cluster by popularity, among the items released by a given day."""

    def __init__(self, world: World, day: int) -> None:
        age = day - world.item_release
        released = age >= 0
        self.released = released
        fresh = 1.0 + FRESHNESS_BOOST * np.exp(-np.maximum(age, 0) / FRESHNESS_DAYS)
        weight = np.where(released, world.item_weight * fresh, 0.0)
        self.members: list[np.ndarray] = []
        self.cdf: list[np.ndarray] = []
        for c in range(world.settings.n_clusters):
            members = np.flatnonzero((world.item_cluster == c) & released)
            self.members.append(members)
            self.cdf.append(np.cumsum(weight[members]))

    def draw(self, cluster: int, u: float) -> int:
        cdf = self.cdf[cluster]
        j = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
        return int(self.members[cluster][min(j, len(cdf) - 1)])


def simulate_day(world: World, day: int, rng: np.random.Generator) -> DayLog:
    """Sessions -> item sequences -> outcomes -> timestamps, for every active user of ``day``."""
    s = world.settings
    active = np.flatnonzero(world.user_join <= day)
    n_sessions = rng.poisson(s.sessions_per_user_day * world.user_activity[active])
    session_user = np.repeat(active, n_sessions)
    lengths = rng.geometric(1.0 / max(s.mean_session_len, 1.0), size=len(session_user))
    hour_cdf = np.cumsum(DIURNAL) / DIURNAL.sum()
    hours = np.minimum(np.searchsorted(hour_cdf, rng.random(len(session_user)), side="right"), 23)
    starts = hours * 3600 + rng.integers(0, 3600, len(session_user))

    sampler = _ClusterSampler(world, day)
    items = [_session_items(world, sampler, int(u), int(n), rng) for u, n in zip(session_user, lengths, strict=True)]
    flat_user = np.repeat(session_user, lengths)
    flat_item = np.array([i for seq in items for i in seq], dtype=int)
    rating, play, flags = outcomes(world, flat_user, flat_item, rng)
    seconds = _timestamps(session_user, starts, lengths, play, rng)
    keep = seconds < SECONDS_PER_DAY  # a session running past midnight is cut there
    order = np.lexsort((flat_item[keep], flat_user[keep], seconds[keep]))
    return DayLog(
        user=flat_user[keep][order],
        item=flat_item[keep][order],
        second=seconds[keep][order],
        rating=rating[keep][order],
        play=play[keep][order],
        flags=flags[keep][order],
    )


def _session_items(
    world: World, sampler: _ClusterSampler, user: int, length: int, rng: np.random.Generator
) -> list[int]:
    """One session's item sequence: follow the successor, stay in the cluster, or jump by taste."""
    seq: list[int] = []
    prev = -1
    for _ in range(length):
        r = rng.random()
        nxt = -1
        if prev >= 0 and r < P_SUCCESSOR:
            cand = int(world.item_successor[prev])
            if cand >= 0 and sampler.released[cand]:
                nxt = cand
        if nxt < 0 and prev >= 0 and r < P_SUCCESSOR + P_SAME_CLUSTER:
            nxt = sampler.draw(int(world.item_cluster[prev]), rng.random())
        if nxt < 0:
            cluster = int(np.searchsorted(world.user_mixture_cdf[user], rng.random(), side="right"))
            nxt = sampler.draw(min(cluster, world.settings.n_clusters - 1), rng.random())
        if nxt == prev:  # one redraw: the same video twice in a row is rare
            nxt = sampler.draw(int(world.item_cluster[prev]), rng.random())
        seq.append(nxt)
        prev = nxt
    return seq


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def outcomes(
    world: World, user: np.ndarray, item: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rating, play seconds and engagement flags from the latent affinity (vectorised).

    Public so the simulator oracle (``jobs/sample_oracle.py``) draws from the very same model.
    """
    n = len(item)
    pref = world.user_pref[user, world.item_cluster[item]]
    affinity = _sigmoid(3.0 * (pref + world.item_quality[item] - 0.6) + rng.normal(0.0, 1.0, n))
    duration = world.item_duration[item]

    dislike = rng.random(n) < 0.3 * np.clip((0.35 - affinity) / 0.35, 0.0, 1.0)
    # Watch ratio: median rises with affinity; it cannot pass 1.0 unless the video loops again.
    ratio = np.minimum((0.05 + 0.8 * affinity) * rng.lognormal(0.0, 0.4, n), 1.0)
    loop_p = 0.3 * affinity**2 * np.where(duration < 60, 1.0, 0.25)
    ratio = np.where(rng.random(n) < loop_p, 1.0 + rng.uniform(0.1, 1.5, n), ratio)
    ratio = np.where(dislike, np.minimum(ratio, rng.uniform(0.02, 0.3, n)), ratio)
    play = np.maximum(np.round(ratio * duration, 1), 0.5)

    rating = np.clip(np.round(0.8 + 4.2 * affinity + rng.normal(0.0, 0.7, n)), 1, 5)
    rating = np.where(dislike, np.minimum(rating, 2), rating)
    like = (rng.random(n) < 0.01 + 0.25 * affinity**3) & ~dislike
    follow = (rng.random(n) < 0.001 + 0.02 * affinity**3) & ~dislike
    comment = rng.random(n) < 0.004 + 0.05 * affinity**2
    share = (rng.random(n) < 0.002 + 0.03 * affinity**3) & ~dislike
    flags = np.stack([like, follow, comment, share, dislike], axis=1).astype(int)
    return rating.astype(int), play, flags


def _timestamps(
    session_user: np.ndarray, starts: np.ndarray, lengths: np.ndarray, play: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Seconds since midnight per interaction: a session advances by play time plus a short gap.

    A user's sessions never overlap (a later one starts after the previous ends), so a
    user's timeline is strictly increasing and (user, item, second) is unique.
    """
    gaps = np.ceil(2.0 + rng.exponential(15.0, len(play))).astype(int)
    out = np.empty(len(play), dtype=int)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    busy_until: dict[int, int] = {}
    for s in np.lexsort((starts, session_user)):  # per user, sessions in start order
        u = int(session_user[s])
        t = max(int(starts[s]), busy_until.get(u, -1) + 60)
        for k in range(offsets[s], offsets[s + 1]):
            out[k] = t
            t += int(np.ceil(play[k])) + gaps[k]
        busy_until[u] = t
    return out


# ---------------------------------------------------------------------------------------------
# Text and rows
# ---------------------------------------------------------------------------------------------


def _duration_bucket(seconds: float) -> str:
    return "short" if seconds < 60 else "medium" if seconds < 600 else "long"


def item_records(world: World, rng: np.random.Generator) -> list[dict]:
    """Catalogue rows: title/description from the cluster vocabulary, categories, attributes."""
    s = world.settings
    stems: dict[int, str] = {}
    records = []
    for i in range(s.n_items):
        c = int(world.item_cluster[i])
        topic = world.topic(c)
        series = int(world.item_series[i])
        if series >= 0 and series in stems:
            stem = stems[series]
        else:
            stem = _title_words(topic, rng, max_words=4 if series >= 0 else 6)
            if series >= 0:
                stems[series] = stem
        title = f"{stem} Part {world.item_episode[i]}" if series >= 0 else stem
        sub = topic.subtopics[int(rng.integers(len(topic.subtopics)))]
        attributes = {
            "author_id": f"a{world.item_author[i]}",
            "duration_bucket": _duration_bucket(world.item_duration[i]),
            "language": "en",
            "release_date": (s.start_date + timedelta(days=int(world.item_release[i]))).isoformat(),
        }
        if series >= 0:
            attributes["series_id"] = f"s{series}"
            attributes["episode"] = str(world.item_episode[i])
        records.append(
            {
                "item_id": f"i{i}",
                "title": title,
                "description": _description(topic, world.category(c), sub, attributes, rng),
                "categories": [world.category(c), sub],
                "attributes": attributes,
                "image_path": None,
            }
        )
    return records


def _title_words(topic: Topic, rng: np.random.Generator, max_words: int) -> str:
    """3..max_words words: mostly the topic's vocabulary, 0-2 shared words around them."""
    n_words = int(rng.integers(3, max_words + 1))
    n_shared = min(int(rng.choice(3, p=[0.35, 0.45, 0.2])), n_words - 2)
    words = list(rng.choice(topic.words, size=n_words - n_shared, replace=False))
    shared = list(rng.choice(SHARED_WORDS, size=n_shared, replace=False))
    if shared:
        words.insert(0, shared[0])
    if len(shared) > 1:
        words.append(shared[1])
    return " ".join(w.capitalize() for w in words)


def _description(topic: Topic, category: str, sub: str, attributes: dict, rng: np.random.Generator) -> str:
    """One sentence from a template, filled with the topic's words."""
    w1, w2, w3 = rng.choice(topic.words, size=3, replace=False)
    template = DESCRIPTION_TEMPLATES[int(rng.integers(len(DESCRIPTION_TEMPLATES)))]
    return template.format(
        adj=ADJECTIVES[int(rng.integers(len(ADJECTIVES)))],
        bucket=attributes["duration_bucket"],
        author=attributes["author_id"],
        topic=category,
        sub=sub,
        w1=w1,
        w2=w2,
        w3=w3,
    )


def user_lines(world: World, rng: np.random.Generator) -> list[str]:
    """``users.csv`` body: age loosely tied to the primary cluster, gender and region independent."""
    n = world.settings.n_users
    median_age = np.array([world.topic(int(c)).median_age for c in world.user_primary])
    age = np.clip(np.round(median_age + rng.normal(0.0, 10.0, n)), 13, 80).astype(int)
    gender = rng.choice(len(GENDERS), size=n, p=GENDER_WEIGHTS)
    region = rng.choice(len(REGIONS), size=n, p=REGION_WEIGHTS / REGION_WEIGHTS.sum())
    return [f"u{u},{age[u]},{GENDERS[gender[u]]},{REGIONS[region[u]]}" for u in range(n)]


def _clock(ds: str, second: int) -> str:
    """ISO-8601 UTC timestamp of ``second`` after midnight of ``ds``."""
    h, rem = divmod(int(second), 3600)
    m, sec = divmod(rem, 60)
    return f"{ds}T{h:02d}:{m:02d}:{sec:02d}Z"


def interaction_fields(log: DayLog, ds: str, duration: np.ndarray) -> list[list[str]]:
    """The day's valid rows as CSV fields (fixed formatting: ints, one-decimal seconds)."""
    rows = []
    for k in range(len(log.item)):
        i = int(log.item[k])
        rows.append(
            [
                f"u{log.user[k]}",
                f"i{i}",
                _clock(ds, log.second[k]),
                str(int(log.rating[k])),
                f"{log.play[k]:.1f}",
                f"{duration[i]:.1f}",
                *(str(int(f)) for f in log.flags[k]),
            ]
        )
    return rows


def broken_line(cls: str, base: list[str], ds: str, earlier: str) -> str:
    """One deliberately bad CSV line of class ``cls`` derived from a valid row ``base``."""
    row = list(base)
    if cls == "missing_user_id":
        row[0] = ""
    elif cls == "bad_timestamp":
        row[2] = "not-a-time"
    elif cls == "negative_play_seconds":
        row[4] = f"-{max(float(row[4]), 1.0):.1f}"
    elif cls == "duplicate_row":
        return earlier
    elif cls == "too_few_fields":
        return f"{row[0]},{row[1]}"
    elif cls == "rating_out_of_range":
        row[3] = "9"
    elif cls == "wrong_day":
        next_day = (date.fromisoformat(ds) + timedelta(days=1)).isoformat()
        row[2] = next_day + row[2][len(ds) :]
    else:
        raise ValueError(f"unknown broken class {cls!r}")
    return ",".join(row)


# ---------------------------------------------------------------------------------------------
# Writing the layout
# ---------------------------------------------------------------------------------------------


def _write_day(
    path: Path, rows: list[list[str]], ds: str, first_broken: int, n_broken: int, rng: np.random.Generator
) -> list[dict]:
    """Write one day's CSV (valid rows, then the broken tail); return where each broken row is."""
    lines = [",".join(r) for r in rows]
    broken = []
    for j in range(n_broken):
        cls = BROKEN_CLASSES[(first_broken + j) % len(BROKEN_CLASSES)]
        base = rows[int(rng.integers(len(rows)))]
        earlier = lines[int(rng.integers(len(rows)))]
        lines.append(broken_line(cls, base, ds, earlier))
        # Header is line 1, so data line n is file line n + 1.
        broken.append({"ds": ds, "line": len(lines) + 1, "class": cls})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CSV_HEADER + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return broken


def _placeholder_row(world: World, ds: str) -> list[str]:
    """A valid row for a day nobody was active, so the broken rows still have a base."""
    item = int(np.argmax(world.item_weight))
    return [
        "u0",
        f"i{item}",
        _clock(ds, 12 * 3600),
        "3",
        "10.0",
        f"{world.item_duration[item]:.1f}",
        "0",
        "0",
        "0",
        "0",
        "0",
    ]


def generate(settings: SampleSettings, out_root: Path) -> dict:
    """Write the canonical layout under ``out_root`` and return its counts (also in MANIFEST.json).

    A previous sample's ``interactions/`` folder is replaced, so a shorter run leaves no stale days.
    """
    out_root = Path(out_root)
    world = build_world(settings)
    rng = np.random.default_rng([settings.seed, 2])
    if (out_root / "interactions").exists():
        shutil.rmtree(out_root / "interactions")

    rows_per_day: dict[str, int] = {}
    broken_rows: list[dict] = []
    for d in range(settings.days):
        ds = (settings.start_date + timedelta(days=d)).isoformat()
        log = simulate_day(world, d, rng)
        rows = interaction_fields(log, ds, world.item_duration)
        if not rows and settings.broken_rows_per_day:
            rows = [_placeholder_row(world, ds)]
        path = out_root / "interactions" / f"ds={ds}" / "part-0.csv"
        broken_rows += _write_day(path, rows, ds, len(broken_rows), settings.broken_rows_per_day, rng)
        rows_per_day[ds] = len(rows)

    text_rng = np.random.default_rng([settings.seed, 3])
    items = item_records(world, text_rng)
    (out_root / "items").mkdir(parents=True, exist_ok=True)
    (out_root / "items" / "items.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8"
    )
    (out_root / "users").mkdir(parents=True, exist_ok=True)
    (out_root / "users" / "users.csv").write_text(
        USERS_HEADER + "\n" + "\n".join(user_lines(world, text_rng)) + "\n", encoding="utf-8"
    )
    manifest = _manifest(settings, world, rows_per_day, broken_rows)
    (out_root / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def settings_fingerprint(settings: SampleSettings) -> str:
    """A short hash of the settings and generator version: a sample is stale when it differs."""
    text = json.dumps({"generator": GENERATOR_VERSION, **settings.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _manifest(settings: SampleSettings, world: World, rows_per_day: dict[str, int], broken_rows: list[dict]) -> dict:
    """Counts a test or a stage can reconcile against (no paths or clocks: stays byte-stable)."""
    by_class = {cls: sum(1 for b in broken_rows if b["class"] == cls) for cls in BROKEN_CLASSES}
    broken_per_day = {ds: sum(1 for b in broken_rows if b["ds"] == ds) for ds in rows_per_day}
    return {
        "generator": "jobs.sample_data",
        "settings": settings.model_dump(mode="json"),
        "fingerprint": settings_fingerprint(settings),
        "days": list(rows_per_day),
        "interactions": sum(rows_per_day.values()),
        "rows_per_day": rows_per_day,
        "file_rows_per_day": {ds: rows_per_day[ds] + broken_per_day[ds] for ds in rows_per_day},
        "users": settings.n_users,
        "items": settings.n_items,
        "new_items": int((world.item_release > 0).sum()),
        "broken": by_class,
        "broken_total": len(broken_rows),
        # file line numbers count the header as line 1
        "broken_rows": broken_rows,
    }


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.sample_data --out DIR``: write the sample and print a summary."""
    defaults = SampleSettings()
    parser = argparse.ArgumentParser(prog="python -m jobs.sample_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the canonical layout into")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    parser.add_argument("--days", type=int, default=defaults.days, help=f"number of days (default {defaults.days})")
    parser.add_argument("--users", type=int, default=defaults.n_users, help=f"users (default {defaults.n_users})")
    parser.add_argument("--items", type=int, default=defaults.n_items, help=f"items (default {defaults.n_items})")
    args = parser.parse_args(argv)
    settings = defaults.model_copy(
        update={"seed": args.seed, "days": args.days, "n_users": args.users, "n_items": args.items}
    )
    started = time.perf_counter()
    counts = generate(settings, args.out)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {args.out}: {counts['interactions']} interactions over {len(counts['days'])} days, "
        f"{counts['users']} users, {counts['items']} items ({counts['new_items']} released later), "
        f"{counts['broken_total']} broken rows in {elapsed:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
