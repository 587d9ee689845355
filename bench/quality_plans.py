"""What ``bench/quality.py`` trains, per profile: ``quick`` (tests), ``cpu`` (the default), ``gpu``.

Shared choices, and why (TIGER, Rajput et al. 2023, is the protocol and the bar):

* Semantic IDs from *behaviour learned on the training split*: the daily pipeline's Swing pairs
  and spectral behaviour vectors (``swing``, the ``*_pipeline`` profiles: nothing borrowed from a
  baseline), the item table of the SASRec-CE baseline (``sasrec``, the older profiles: its
  generator is a hybrid) or PPMI co-occurrence SVD (``ppmi``),
  then balanced residual k-means, 3 levels x 256 codes + a dedup level (``models.rq_kmeans``, the
  daily stage's tokenizer, through ``models.item_codes``).
  Beauty.txt has no item text; behaviour IDs put items that follow the same histories under
  one prefix, which is what the generator has to tell apart. When several sources are listed,
  each trains a generator and the best on *valid* Recall@10 is kept (test is scored once).
* Every prefix of every training sequence is an example (TIGER does this; ``models.data``).
* Regularisation for a 130k-example corpus: dropout 0.1 (TIGER's) and label smoothing 0.1 on
  the code softmax (neighbouring codes are near-equally plausible next items).
* An item head on the encoder (``OneRecConfig.item_loss_weight`` 1): a full-softmax next-item
  loss beside the code loss, and the beam's candidates reranked by beam log-probability + the
  head's log-probability (``TrainConfig.item_weight`` 1: the product of the two, no tuned
  constant). Both orders are scored from the same beam; ``onerec_beam_order`` in the metrics is
  the generator's own order. Measured 2026-11-26 on Beauty valid (first 2,000 users, the CPU
  shape, the same SASRec IDs, one CPU thread each, 1,500 s each, side by side): best valid
  Recall@10 0.0270 without the head; with it 0.0310 in beam order (the head alone makes a
  better encoder) and 0.0355 reranked (+31%), ahead at every one of the 7 validations.
* Early stopping on valid Recall@10 (``patience`` validations), a narrow validation beam (20) on
  the first ``eval_users`` users and a wide test beam (50): the cheap validation schedule.
* SASRec: the RecBole-style shape of the strong public runs (d 64, 2 x 2, dropout 0.5, max len
  50); CE is full softmax, BCE one sampled negative (TIGER's table's variant).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from models.config import OneRecConfig, SASRecConfig, TrainConfig, preset


@dataclass(kw_only=True)
class Plan:
    """One benchmark profile: model shapes, three training configs and the ID candidates."""

    name: str
    onerec: OneRecConfig
    sasrec: SASRecConfig
    onerec_train: TrainConfig
    sasrec_train: TrainConfig
    bce_train: TrainConfig
    sid_levels: int = 3
    sid_codes: int = 256
    sid_sources: tuple[str, ...] = ("sasrec",)
    eval_users: int | None = 5000  # validation users (test always scores everyone)
    # Item-head rerank weight at test (a labelled hybrid row beside the generator's own order);
    # None: the training config's ``item_weight``, which validation also ranks with.
    test_rerank_weight: float | None = None
    max_users: int | None = None  # first N users of the file only (quick mode)
    notes: list[str] = field(default_factory=list)


def _sel(tc: TrainConfig, **changes) -> TrainConfig:
    return dataclasses.replace(tc, select_by="recall@10", **changes)


def quick() -> Plan:
    """Seconds on one CPU thread: 300 users, tiny models; checks plumbing, not quality."""
    p = preset("tiny")
    onerec = dataclasses.replace(p.onerec, short_len=10, pos_len=10, lifelong_len=0, label_smoothing=0.1,
                                 item_loss_weight=1.0)  # fmt: skip
    tc = TrainConfig(batch_size=32, lr=3e-3, warmup_steps=3, steps=12, eval_every=6, ckpt_every=12,
                     eval_batch_size=256, beam_size=10, test_beam_size=10, log_every=6, item_weight=1.0)  # fmt: skip
    return Plan(name="quick", onerec=onerec, sasrec=p.sasrec, onerec_train=_sel(tc), sasrec_train=_sel(tc),
                bce_train=_sel(tc), sid_levels=2, sid_codes=8, sid_sources=("sasrec", "ppmi"), eval_users=None,
                max_users=300)  # fmt: skip


def _beauty_onerec() -> OneRecConfig:
    """The tech report's pathways at Beauty scale; MoE (4 experts, top-2) in every other decoder
    layer; the item head on the encoder (see the module docstring)."""
    return dataclasses.replace(preset("small").onerec, dropout=0.1, label_smoothing=0.1, item_loss_weight=1.0)


def _sasrec() -> SASRecConfig:
    return preset("small").sasrec


def gpu() -> Plan:
    """One GPU, bf16, ~4.5 minutes end to end on an H200 (the 15-minute GPU aim, with margin).

    Measured 2026-11-26 on one H200 (``bash bench/gpu_session.sh``, 258 s for the whole
    benchmark), *before* the item head and with validation on the first 5,000 users (both
    changed since; not yet re-measured on a GPU): test Recall@10 / NDCG@10 OneRec 0.0592 / 0.0322 (SASRec IDs, chosen on valid
    over PPMI IDs: valid R@10 0.0386 vs 0.0360), SASRec-CE 0.0861 / 0.0418, SASRec-BCE
    0.0483 / 0.0206. Steps are sized so the cosine schedule ends inside the time box (SASRec
    ~120 steps/s, the generator ~17 steps/s at batch 1024); ``time_limit_s`` is a safety net.
    """
    common = TrainConfig(device="cuda", dtype="bf16", log_every=100, eval_batch_size=1024, item_weight=1.0)
    onerec_tc = _sel(common, batch_size=1024, lr=1.5e-3, warmup_steps=200, steps=1500, eval_every=300,
                     ckpt_every=300, beam_size=20, test_beam_size=50, patience=3, time_limit_s=120)  # fmt: skip
    sasrec_tc = _sel(common, batch_size=256, lr=1e-3, warmup_steps=500, steps=6000, eval_every=1000,
                     ckpt_every=1000, patience=3, time_limit_s=60)  # fmt: skip
    bce_tc = dataclasses.replace(sasrec_tc, steps=3500, time_limit_s=35)
    return Plan(name="gpu", onerec=_beauty_onerec(), sasrec=_sasrec(), onerec_train=onerec_tc,
                sasrec_train=sasrec_tc, bce_train=bce_tc, sid_sources=("sasrec", "ppmi"))  # fmt: skip


def gpu_long() -> Plan:
    """Rejected on valid: ~3x the epochs (batch 2048, 3,600 steps planned, SASRec IDs only).

    The generator is launch-bound at this size (batch 2048 runs at ~15 steps/s, as 1024 does at
    17), so epochs are cheap -- but it over-fits: valid Recall@10 peaked at step 1200 (~19
    epochs, 0.0356) and fell to 0.027 by 2400 (early stop) while the training loss kept
    dropping; below ``gpu``'s 0.0386. More data per user, not more passes, is what it lacks.
    """
    plan = gpu()
    tc = dataclasses.replace(plan.onerec_train, batch_size=2048, lr=2e-3, warmup_steps=300, steps=3600,
                             eval_every=400, ckpt_every=400, time_limit_s=230)  # fmt: skip
    return dataclasses.replace(plan, name="gpu_long", onerec_train=tc, sid_sources=("sasrec",))


def _cpu_onerec() -> OneRecConfig:
    """A quarter of the GPU shape's FLOPs: Beauty has no engagement signals, so the positive pathway
    repeats the short-term one and the lifelong one repeats both (mean sequence 8.9 items): the
    last 20 items are the whole context; 2 encoder + 2 decoder layers (MoE in the second)."""
    return dataclasses.replace(_beauty_onerec(), pos_len=0, lifelong_len=0, n_enc_layers=2, n_dec_layers=2,
                               d_ff=256)  # fmt: skip


def cpu() -> Plan:
    """The default: 2 CPU cores, aiming under an hour for Beauty (time boxes keep it there on a busy box).

    The slim ``_cpu_onerec`` shape, one ID source (SASRec's items), 2,000 validation users and a
    test beam of 20: on 2 cores a beam over 22k users costs minutes per validation otherwise.

    Measured 2026-11-26 on Amazon Beauty, 2 idle cores, ``make bench-quality`` (51.8 min in
    all; validation then on the first 2,000 users): test Recall@5 / NDCG@5 / Recall@10 /
    NDCG@10 OneRec 0.0483 / 0.0324 / 0.0690 / 0.0391 (item-head rerank; beam order alone
    0.0413 / 0.0269 / 0.0642 / 0.0342), SASRec-CE 0.0526 / 0.0316 / 0.0810 / 0.0408,
    SASRec-BCE 0.0147 / 0.0084 / 0.0257 / 0.0119. OneRec stopped on its time box at step 3,141
    with valid still rising.

    Measured earlier (before the item head) on Amazon Scientific, one thread of a busy 2-core box (load ~9),
    ``--ids both --threads 1 --time-scale 0.33``, 29.6 min: test Recall@10 / NDCG@10 OneRec with
    SASRec IDs 0.0575 / 0.0354, with text IDs (TF-IDF SVD) 0.0487 / 0.0251, SASRec-CE
    0.0760 / 0.0443, SASRec-BCE 0.0557 / 0.0293 (time-boxed: ~7 epochs for the generators).
    """
    common = TrainConfig(device="cpu", dtype="fp32", log_every=50, eval_batch_size=512, item_weight=1.0)
    # Steps sized so each cosine schedule ends inside its time box on 2 idle cores (SASRec-CE
    # ~2.6 steps/s at batch 256, the generator ~2.3 at 512, BCE ~5): a schedule cut off at high
    # learning rate under-trains, the time box is only the safety net on a busy machine.
    onerec_tc = _sel(common, batch_size=512, lr=2e-3, warmup_steps=200, steps=3600, eval_every=300,
                     ckpt_every=300, beam_size=20, test_beam_size=20, patience=3, time_limit_s=1680)  # fmt: skip
    sasrec_tc = _sel(common, batch_size=256, lr=1e-3, warmup_steps=300, steps=2800, eval_every=400,
                     ckpt_every=400, patience=3, time_limit_s=1140)  # fmt: skip
    bce_tc = dataclasses.replace(sasrec_tc, steps=1400, eval_every=350, ckpt_every=350, time_limit_s=300)
    return Plan(name="cpu", onerec=_cpu_onerec(), sasrec=_sasrec(), onerec_train=onerec_tc,
                sasrec_train=sasrec_tc, bce_train=bce_tc, eval_users=2000)  # fmt: skip


def cpu_long() -> Plan:
    """``cpu`` with a 36-minute generator box (4,800 steps planned): about an hour in all.

    Measured 2026-11-26 on Amazon Beauty, 2 idle cores: the generator stage alone, rerun on the
    semantic IDs of the ``cpu`` run's SASRec-CE (same item vectors, same codes), validating on
    2,000 random users; stopped on its box at step 3,996 (2,175 s), valid Recall@10 still 0.090
    at the end. Test Recall@5 / NDCG@5 / Recall@10 / NDCG@10: 0.0489 / 0.0333 / 0.0723 / 0.0408
    with the item-head rerank (beam order alone 0.0447 / 0.0293 / 0.0676 / 0.0366), against
    SASRec-CE's 0.0526 / 0.0316 / 0.0810 / 0.0408 from that run.
    """
    plan = cpu()
    tc = dataclasses.replace(plan.onerec_train, steps=4800, eval_every=400, ckpt_every=400, time_limit_s=2160)
    return dataclasses.replace(plan, name="cpu_long", onerec_train=tc)


def _pipeline_ids(plan: Plan, name: str) -> Plan:
    """``plan`` on the pipeline's IDs, validated on the generator's own order, rerank reported apart."""
    tc = dataclasses.replace(plan.onerec_train, item_weight=0.0)
    return dataclasses.replace(plan, name=name, onerec_train=tc, sid_sources=("swing",), test_rerank_weight=1.0)


def cpu_pipeline() -> Plan:
    """The CPU default since 2026-12-07: ``cpu``'s models and time boxes, the pipeline's own IDs.

    Committed before its test split was ever scored. What changed against ``cpu``, and why
    (issue: the model that is served is the model that is measured):

    * IDs from ``swing`` (bench/quality_pipeline.py): the daily pipeline's Swing item pairs and
      spectral behaviour vectors on the training split, then its tokenizer. ``cpu`` took
      SASRec-CE's item table, which borrows the baseline's training: a hybrid, not OneRec's.
    * Validation ranks by the generator's own beam probabilities (``item_weight`` 0), so the
      checkpoint is chosen on the headline row's own metric. The item head still trains (its
      loss makes a better encoder, see the module docstring); at test the same beam is also
      reranked by it (``test_rerank_weight`` 1) and reported as a separate, labelled hybrid row.
    """
    return _pipeline_ids(cpu(), "cpu_pipeline")


def gpu_pipeline() -> Plan:
    """``gpu`` with ``cpu_pipeline``'s changes (the pipeline's IDs, selection on the generator's own
    order, the rerank as a labelled row). Committed before any run; not yet run on a GPU."""
    return _pipeline_ids(gpu(), "gpu_pipeline")


def with_generator(plan: Plan, arch: str | None = None, per_position: bool = False,
                   item_head: float | None = None) -> Plan:  # fmt: skip
    """The plan with the generator's A/B switches: architecture, per-position training, item head.

    ``lazy_decoder`` (OneRec-V2) has no encoder, so no item head: its weight is forced to 0 (the
    generator alone). ``per_position`` trains on windows, every position a target
    (models/per_position.py), on the short-term pathway only (the others would see the future).
    ``item_head`` W sets the head's loss and rerank weight (0 = the generator alone); a plan that
    validates on the generator's own order (``test_rerank_weight`` set) keeps doing so, and W
    becomes the weight of its test-time rerank row.
    """
    onerec, tc, rerank = plan.onerec, plan.onerec_train, plan.test_rerank_weight
    if item_head is not None:
        onerec = dataclasses.replace(onerec, item_loss_weight=item_head)
        if rerank is None:
            tc = dataclasses.replace(tc, item_weight=item_head)
        else:
            rerank = item_head
    if arch == "lazy_decoder":  # one replace: the config refuses an item head without an encoder
        onerec, tc = (
            dataclasses.replace(onerec, architecture=arch, item_loss_weight=0.0),
            dataclasses.replace(tc, item_weight=0.0),
        )
    elif arch:
        onerec = dataclasses.replace(onerec, architecture=arch)
    if per_position:
        onerec = dataclasses.replace(onerec, per_position=True, pos_len=0, lifelong_len=0)
    return dataclasses.replace(plan, onerec=onerec, onerec_train=tc, test_rerank_weight=rerank)


PLANS = {
    "quick": quick,
    "cpu": cpu,
    "cpu_long": cpu_long,
    "cpu_pipeline": cpu_pipeline,
    "gpu": gpu,
    "gpu_long": gpu_long,
    "gpu_pipeline": gpu_pipeline,
}
