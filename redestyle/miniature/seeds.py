"""Named, disjoint seed ranges of the miniature world: what trains never evaluates.

Every face of the world is ``sample_params(np.random.default_rng(seed))`` drawn in order, so two
sets share faces when (and only when, up to chance collisions of continuous draws) they share a
seed. Evaluation sets (portrait sets with known answers, held-out renders, Fréchet sets, the test
suite's sets) take seeds from :data:`EVALUATION`; training streams take theirs from
:data:`TRAINING`, one sub-range per stream (:data:`STREAMS`), through :func:`training_seed`.

The networks shipped before these ranges existed were trained on streams 0 (photo) and 1
(portrait), inside :data:`EVALUATION` (:data:`LEGACY_DATA_SEEDS`): ``person_set(seed=0)`` portrait 0
has the parameters of their training photo #0. Their records reproduce them with
``--data-seed 0``; a retrained stage without that flag draws from :data:`TRAINING`.
"""

from __future__ import annotations

#: Seeds of evaluation sets (world.person_set / named_portraits, world.photo_renders, the oracle's
#: held-out set, notebooks, tests).
EVALUATION = range(0, 1_000_000)
#: Seeds of training streams: ``TRAINING.start + STREAMS[stream] + seed``.
TRAINING = range(1_000_000, 2_000_000)
#: Offset of each training stream inside TRAINING (a run's ``--seed`` indexes inside its stream).
STREAMS = {"photo": 0, "portrait": 100_000, "generator_sup": 200_000, "idnet": 300_000,
           "dsg_style": 400_000}  # dsg_style: the style set of DualStyleGAN's §4.4 runs (supervision.py)
STREAM_SPAN = 100_000
#: The evaluation sets the notebooks and ``world``'s defaults use (name -> seed).
EVALUATION_SETS = {
    "person_set / named_portraits (notebooks, default portraits)": 0,
    "oracle held-out renders (train.py oracle, seed + 100)": 100,
    "Fréchet: photo renders": 1000,
    "Fréchet: other photo renders / generator grid": 1001,
    "Fréchet: portrait renders": 1002,
    "ReStyle held-out photo renders": 2000,
    "ID network verification: held-out identities (idnet.EVAL_SEED)": 3000,
    "person_set: held-out accuracy protocol, 30 x 4 (protocol.EVAL_SEED)": 4000,
    "DualStyleGAN supervision: exemplar portraits": 5000,
}
#: Data seeds of the stages shipped before this table (reproduced with ``--data-seed 0``).
LEGACY_DATA_SEEDS = {"photo": 0, "portrait": 1}

assert TRAINING.start >= EVALUATION.stop  # disjoint by construction
assert all(0 <= off and off + STREAM_SPAN <= len(TRAINING) for off in STREAMS.values())
assert len(set(STREAMS.values())) == len(STREAMS)


def training_seed(stream: str, seed: int = 0) -> int:
    """The ``np.random.default_rng`` seed of training stream ``stream`` for a run's ``seed``.

    ``seed`` in [0, STREAM_SPAN); the result lies in :data:`TRAINING`, away from every evaluation
    seed. Raises ValueError for an unknown stream or a seed outside its span.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown training stream {stream!r}; known: {', '.join(STREAMS)}")
    if not 0 <= seed < STREAM_SPAN:
        raise ValueError(f"training seed must be in [0, {STREAM_SPAN}), got {seed}")
    return TRAINING.start + STREAMS[stream] + seed
