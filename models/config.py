"""Model and training configs (one dataclass each) and the named presets.

``OneRecConfig`` describes both generators: the OneRec encoder-decoder (OneRec Technical Report,
arXiv 2506.13695, "Encoder" and "Decoder") and the OneRec-V2 lazy decoder-only model (arXiv
2508.20900, "Lazy Decoder-Only Architecture"); ``architecture`` picks one. ``SASRecConfig`` is
the baseline (Kang & McAuley, ICDM 2018). Presets follow torchtitan's config registry: a
function per named config, variants copy a base and tweak it. The item vocabulary (``n_items``)
and the semantic-ID shape come from the data, so ``train.py`` fills them in with
``dataclasses.replace``; a preset's values there are placeholders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# Short-term interaction signals, in the order of the ``short_signals`` channels (models/pathways.py):
# the gold flag bits, the play ratio and the rating; each also has a presence channel.
SIGNAL_NAMES = ("like", "follow", "comment", "share", "dislike", "play_ratio", "rating")
PATHWAYS = ("static", "short", "positive", "lifelong")


@dataclass(kw_only=True)
class OneRecConfig:
    """Shape of a OneRec generator. Defaults are the tech report's where it gives a number."""

    # Semantic-ID vocabulary: ``levels`` RQ-KMeans levels of ``codes_per_level`` codes, plus the
    # dedup level of ``rq_kmeans.resolve_collisions`` when ``dedup_codes`` > 0 (its size).
    levels: int = 3
    codes_per_level: int = 8192
    dedup_codes: int = 0
    # Context item vocabulary: ids 1..n_items, 0 = padding. With ``sid_item_embedding`` an item's
    # context vector also sums its code embeddings, so a new item is not a blank row.
    n_items: int = 1
    sid_item_embedding: bool = True
    # Static pathway: hashed user-id buckets (0 = no id embedding) and categorical attributes, one
    # embedding table per entry of ``user_attr_sizes`` (index 0 = missing, a zero vector). From feature
    # rows (models/pathways.py) they are the attributes ``user_attr_names`` (``attr_buckets`` hashed
    # values each), then the counts ``user_count_features`` (``count_buckets`` log2 buckets each).
    n_user_buckets: int = 0
    user_attr_sizes: tuple[int, ...] = ()
    user_attr_names: tuple[str, ...] = ()
    user_count_features: tuple[str, ...] = ()
    attr_buckets: int = 64
    count_buckets: int = 16
    # Per-interaction signals of the short-term pathway: flag bits like, follow, comment, share,
    # dislike (gold's bitmask), then play ratio and rating (SIGNAL_NAMES), each with a presence bit.
    n_flags: int = 5
    # The signals the training data carries (models.pathways.observed_signals); others stay masked.
    signals: tuple[str, ...] = SIGNAL_NAMES
    # Ablation: pathways fed as padding only (of PATHWAYS).
    masked_pathways: tuple[str, ...] = ()
    n_gap_buckets: int = 16  # log2-minute buckets of (request time - interaction time)
    # Context lengths (tech report: 20 short-term, 256 positive, 2,000 lifelong -> 128 queries).
    short_len: int = 20
    pos_len: int = 256
    lifelong_len: int = 2000
    n_queries: int = 128
    qformer_blocks: int = 2
    # Transformer.
    d_model: int = 128
    n_heads: int = 4
    n_kv_heads: int = 2
    n_enc_layers: int = 4
    n_dec_layers: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    # Sparse MoE in the decoder: layer i is MoE when n_experts > 0 and (i + 1) % moe_every == 0.
    n_experts: int = 0
    top_k: int = 2
    moe_every: int = 2
    moe_bias_rate: float = 1e-3
    architecture: Literal["encoder_decoder", "lazy_decoder"] = "encoder_decoder"
    # Lazy decoder KV sharing (V2): L_kv KV sets for all layers, S_kv = 1 (K = V) or 2.
    kv_sets: int = 1
    kv_split: int = 1
    session_len: int = 1  # items per target: 1 = point-wise, > 1 = session-wise
    # Label smoothing of the per-level code softmax: codes are a coarse, noisy clustering (many
    # next items are near-equally plausible), so a peaked target over-fits Beauty's 130k examples.
    label_smoothing: float = 0.0
    # Auxiliary next-item loss (0 = off), weight against the code loss: a full-softmax item head
    # on the encoder output at the most recent short-term position, scored against the context
    # item table (tied, as SASRec ties input and output). The code loss alone teaches the encoder
    # only what the coarse code tuples can tell apart; the item loss makes it model the item
    # itself (LIGER, Yang et al. 2024, trains generative and dense retrieval on one encoder for
    # the same reason). Beam search may then rerank its candidates with the head
    # (``beam.rerank``); every output still comes from the constrained beam.
    item_loss_weight: float = 0.0
    # Per-position training (``models/per_position.py``): one sample is a window of a training
    # sequence and every position in it is a target, decoded from the context before it (causal
    # encoder / context mask), as SASRec learns -- about ``short_len`` targets per sample instead
    # of one. Needs the short-term pathway alone (``pos_len = lifelong_len = 0``: those pathways
    # summarise the whole history and would show later positions their own targets) and
    # ``session_len = 1``. Inference is unchanged: the newest position sees the whole context.
    per_position: bool = False

    def __post_init__(self) -> None:
        positive = ("levels", "codes_per_level", "n_items", "d_model", "n_heads", "n_kv_heads", "n_dec_layers")
        for name in (*positive, "d_ff", "session_len", "kv_sets", "n_gap_buckets"):
            if getattr(self, name) < 1:
                raise ValueError(f"OneRecConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError("d_model must divide by n_heads, and n_heads by n_kv_heads")
        if self.n_experts and not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"top_k must be in [1, n_experts], got {self.top_k} of {self.n_experts}")
        if self.architecture not in ("encoder_decoder", "lazy_decoder"):
            raise ValueError(f"unknown architecture {self.architecture!r}")
        if self.kv_split not in (1, 2) or self.kv_sets > self.n_dec_layers:
            raise ValueError("kv_split must be 1 or 2, and kv_sets <= n_dec_layers")
        if self.lifelong_len and self.n_queries < 1:
            raise ValueError("a lifelong pathway needs n_queries >= 1")
        if self.item_loss_weight < 0:
            raise ValueError(f"item_loss_weight must be >= 0, got {self.item_loss_weight}")
        if self.item_loss_weight and self.architecture != "encoder_decoder":
            raise ValueError("item_loss_weight needs the encoder (architecture encoder_decoder)")
        named = len(self.user_attr_names) + len(self.user_count_features)
        if named and named != len(self.user_attr_sizes):
            raise ValueError("user_attr_sizes needs one size per user_attr_names + user_count_features entry")
        if self.n_flags + 2 != len(SIGNAL_NAMES) or not set(self.signals) <= set(SIGNAL_NAMES):
            raise ValueError(f"signals must be among {SIGNAL_NAMES} (n_flags = {len(SIGNAL_NAMES) - 2})")
        if not set(self.masked_pathways) <= set(PATHWAYS):
            raise ValueError(f"masked_pathways must be among {PATHWAYS}, got {self.masked_pathways}")
        if self.per_position and (self.pos_len or self.lifelong_len or self.session_len != 1):
            raise ValueError("per_position needs pos_len = lifelong_len = 0 and session_len = 1 (causal context)")

    @property
    def signal_dim(self) -> int:
        """Channels of ``short_signals``: one value and one presence bit per signal."""
        return 2 * (self.n_flags + 2)

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Codes per decoded level, the dedup level last."""
        return (self.codes_per_level,) * self.levels + ((self.dedup_codes,) if self.dedup_codes else ())

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def target_len(self) -> int:
        """Decoder tokens per sample: the concatenated ID tuples of the session's items."""
        return self.session_len * self.n_levels

    @property
    def context_len(self) -> int:
        """Encoder / context tokens: 1 static + short + positive + lifelong queries."""
        return 1 + self.short_len + self.pos_len + (self.n_queries if self.lifelong_len else 0)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def is_moe(self, layer: int) -> bool:
        return self.n_experts > 0 and (layer + 1) % self.moe_every == 0


@dataclass(kw_only=True)
class SASRecConfig:
    """SASRec (Kang & McAuley 2018). ``loss="ce"`` is full softmax, ``"bce"`` the original."""

    n_items: int = 1
    max_len: int = 50
    d_model: int = 64
    n_heads: int = 2
    n_layers: int = 2
    d_ff: int = 64  # the paper's point-wise FFN keeps the width
    dropout: float = 0.2
    loss: Literal["ce", "bce"] = "ce"
    n_negatives: int = 1

    def __post_init__(self) -> None:
        if self.loss not in ("ce", "bce"):
            raise ValueError(f"unknown SASRec loss {self.loss!r}")
        if self.d_model % self.n_heads or min(self.n_items, self.max_len, self.n_negatives) < 1:
            raise ValueError("bad SASRec shape")


@dataclass(kw_only=True)
class TrainConfig:
    """Optimisation and bookkeeping. ``steps`` counts optimizer steps (``epochs`` if set wins)."""

    batch_size: int = 256
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 200
    steps: int = 10_000
    epochs: int = 0
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 1000
    ckpt_every: int = 1000
    eval_batch_size: int = 512
    beam_size: int = 20
    log_every: int = 50
    device: str = "cpu"
    dtype: Literal["fp32", "bf16"] = "fp32"
    seed: int = 0
    out_dir: str = "var/models/run"
    resume: bool = False
    # Model selection on the *valid* split only: best checkpoint by ``select_by``; stop once
    # ``patience`` validations in a row bring no improvement (0 = never stop early).
    select_by: str = "ndcg@10"
    patience: int = 0
    # Beam width for the final (test) scoring; 0 = ``beam_size``. Validation runs at the narrower
    # ``beam_size`` because it runs many times (the cheap validation schedule the issue asks for).
    test_beam_size: int = 0
    # Wall-clock budget of the loop in seconds (0 = none): at the first step past it the run
    # validates, saves and finishes as if scheduled (benchmarks with a time box). Single process
    # only: under DDP the ranks' clocks would disagree on the stopping step, so it is ignored there.
    time_limit_s: float = 0.0
    # Generator scoring for validation and test: beam log-probability + ``item_weight`` x the
    # item head's log-probability (``beam.rerank``; 0 = beam order). Weight 1 is the product of
    # the two models' probabilities: no tuned constant.
    item_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.dtype not in ("fp32", "bf16"):
            raise ValueError(f"dtype must be fp32 or bf16, got {self.dtype!r}")
        if min(self.batch_size, self.eval_every, self.ckpt_every, self.beam_size) < 1:
            raise ValueError("batch_size, eval_every, ckpt_every and beam_size must be >= 1")


@dataclass(kw_only=True)
class Preset:
    onerec: OneRecConfig
    sasrec: SASRecConfig
    train: TrainConfig


def tiny() -> Preset:
    """For tests: CPU, seconds (plays torchtitan's ``debugmodel``)."""
    onerec = OneRecConfig(
        levels=2, codes_per_level=8, dedup_codes=0, n_items=40, n_user_buckets=16, short_len=6, pos_len=4,
        lifelong_len=8, n_queries=2, qformer_blocks=1, d_model=32, n_heads=4, n_kv_heads=2, n_enc_layers=1,
        n_dec_layers=2, d_ff=64, dropout=0.0, n_experts=4, top_k=2, moe_every=2, moe_bias_rate=0.01,
    )  # fmt: skip
    sasrec = SASRecConfig(n_items=40, max_len=10, d_model=32, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    train = TrainConfig(batch_size=16, lr=3e-3, warmup_steps=5, steps=40, eval_every=20, ckpt_every=20,
                        eval_batch_size=64, beam_size=10, log_every=10)  # fmt: skip
    return Preset(onerec=onerec, sasrec=sasrec, train=train)


def small() -> Preset:
    """Amazon Beauty scale (12k items, 22k users): TIGER's size class, MoE in every other layer.

    Validated 2026-11-26 on one H200, bf16, Beauty.txt with behaviour-derived semantic IDs:
    ``python -m models.train --model sasrec --loss ce --data Beauty.txt --preset small --device cuda
    --dtype bf16 --steps 10800`` -> test Recall@10 0.0854, NDCG@10 0.0422 (85 s);
    ``--model onerec --batch-size 512 --steps 1600`` -> test Recall@10 0.0580, NDCG@10 0.0296 (95 s).
    """
    onerec = OneRecConfig(
        levels=3, codes_per_level=256, n_items=12101, n_user_buckets=0, short_len=20, pos_len=50,
        lifelong_len=100, n_queries=8, qformer_blocks=1, d_model=128, n_heads=4, n_kv_heads=2,
        n_enc_layers=4, n_dec_layers=4, d_ff=512, dropout=0.1, n_experts=4, top_k=2, moe_every=2,
    )  # fmt: skip
    # Full-softmax SASRec as in the strong public re-implementations (RecBole-style: d 64, 2x2, high dropout).
    sasrec = SASRecConfig(n_items=12101, max_len=50, d_model=64, n_heads=2, n_layers=2, d_ff=64, dropout=0.5)
    train = TrainConfig(batch_size=256, lr=1e-3, warmup_steps=500, steps=20_000, eval_every=1000, ckpt_every=1000)
    return Preset(onerec=onerec, sasrec=sasrec, train=train)


def onerec_0_015b() -> Preset:
    """The tech report's smallest dense model: 4 layers, d 128, 3 x 8192 codes, full context lengths."""
    base = small()
    onerec = OneRecConfig(levels=3, codes_per_level=8192, d_model=128, n_heads=4, n_kv_heads=4, n_enc_layers=4,
                          n_dec_layers=4, d_ff=512, n_experts=0)  # fmt: skip
    return Preset(onerec=onerec, sasrec=base.sasrec, train=dataclasses.replace(base.train, batch_size=1024))


def onerec_0_121b() -> Preset:
    """The tech report's 0.121B dense scale (8 layers, d 1024) with Beauty's codes: the MFU probe.

    Small models are bound by kernel launches, not FLOPs; this is the smallest of the
    paper's sizes where the GPU's matrix units, and so MFU, are the limit. Validated
    2026-11-26 on one H200, bf16, batch 512, 200 steps on Amazon Beauty:
    ``python -m models.train --model onerec --preset onerec_0_121b --codes <beauty codes>
    --data Beauty.txt --device cuda --dtype bf16 --stop-after 200`` -> MFU 28.8%,
    17.1k target tokens/s (encoder-decoder); ``--architecture lazy_decoder`` -> 50.3k
    tokens/s at 8.5% MFU (a third of the FLOPs per token, as OneRec-V2 intends).
    """
    base = small()
    onerec = dataclasses.replace(
        base.onerec, d_model=1024, n_heads=16, n_kv_heads=4, n_enc_layers=8, n_dec_layers=8, d_ff=4096,
        n_experts=0, dropout=0.0,
    )  # fmt: skip
    return Preset(
        onerec=onerec, sasrec=base.sasrec, train=dataclasses.replace(base.train, batch_size=512, warmup_steps=50)
    )


def onerec_100m() -> Preset:
    """~100M parameters (d 768, 4 + 4 layers, d_ff 3072, dense): the issue's MFU probe size
    (``bench/train.py``); ``onerec_0_121b`` is the tech report's depth at d 1024 (~300M here)."""
    base = onerec_0_121b()
    onerec = dataclasses.replace(base.onerec, d_model=768, n_heads=12, n_kv_heads=4, n_enc_layers=4,
                                 n_dec_layers=4, d_ff=3072)  # fmt: skip
    return Preset(onerec=onerec, sasrec=base.sasrec, train=dataclasses.replace(base.train, batch_size=1024))


PRESETS: dict[str, Callable[[], Preset]] = {
    "tiny": tiny,
    "small": small,
    "onerec_0_015b": onerec_0_015b,
    "onerec_0_121b": onerec_0_121b,
    "onerec_100m": onerec_100m,
}


def preset(name: str) -> Preset:
    """A fresh copy of the named preset (callers may mutate it)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]()
