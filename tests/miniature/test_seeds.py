"""Held-out seeds by construction: no evaluation face occurs in any training stream."""

from __future__ import annotations

import numpy as np
import pytest

from redestyle.miniature import protocol, seeds, train, world
from redestyle.miniature.oracle import IDENTITY
from redestyle.miniature.render import VECTOR_NAMES

#: Faces checked per training stream (the streams are distinct seeds: this is the check of it).
N_TRAIN = 10000
_ID_COLS = [VECTOR_NAMES.index(n) for n in (*IDENTITY, "hair_style")]


def _keys(vectors: np.ndarray, cols=None) -> set[bytes]:
    v = np.asarray(vectors, np.float64)
    return {row.tobytes() for row in (v if cols is None else v[:, cols])}


def _vectors(faces) -> np.ndarray:
    return np.stack([f.to_vector() for f in faces])


def _evaluation_vectors() -> np.ndarray:
    """Every evaluation set of the notebooks and world's defaults (seeds.EVALUATION_SETS)."""
    sets = []
    for name, seed in seeds.EVALUATION_SETS.items():
        if name.startswith("person_set"):  # drawn person by person: the sets as the protocol draws them
            sets.append(world.person_set(protocol.N_PEOPLE, protocol.PER_PERSON, seed=seed).vectors)
        else:
            sets.append(_vectors(world.draw_faces(1000, seed)))
    return np.concatenate(sets)


def _training_streams() -> dict[str, np.ndarray]:
    """The first N_TRAIN faces of every training stream a default command draws (seed 0)."""
    return {stream: _vectors(world.draw_faces(N_TRAIN, seeds.training_seed(stream, 0)))
            for stream in seeds.STREAMS}


def test_ranges_are_disjoint_and_every_set_lies_in_its_range():
    assert set(seeds.TRAINING).isdisjoint(seeds.EVALUATION)
    assert all(s in seeds.EVALUATION for s in seeds.EVALUATION_SETS.values())
    starts = sorted(seeds.training_seed(s, 0) for s in seeds.STREAMS)
    assert all(b - a >= seeds.STREAM_SPAN for a, b in zip(starts, starts[1:]))  # streams do not overlap
    assert seeds.training_seed("photo", seeds.STREAM_SPAN - 1) in seeds.TRAINING
    with pytest.raises(ValueError, match="training seed must be in"):
        seeds.training_seed("photo", seeds.STREAM_SPAN)
    with pytest.raises(ValueError, match="unknown training stream 'faces'"):
        seeds.training_seed("faces")


def test_no_evaluation_face_or_identity_occurs_in_a_training_stream():
    evaluation = _evaluation_vectors()
    full, ids = _keys(evaluation), _keys(evaluation, _ID_COLS)
    assert len(ids) > 1000  # the sets are really there
    for stream, vectors in _training_streams().items():
        assert full.isdisjoint(_keys(vectors)), stream
        assert ids.isdisjoint(_keys(vectors, _ID_COLS)), stream  # not even one person is shared


def test_the_check_finds_the_leak_of_the_legacy_streams():
    # the files shipped before the seed ranges trained on stream 0: person_set(seed=0) portrait 0
    # is that stream's photo #0 (the detector above would fail on it)
    legacy = _vectors(world.draw_faces(100, seeds.LEGACY_DATA_SEEDS["photo"]))
    pset = world.person_set(4, 4, seed=0)
    assert np.array_equal(pset.vectors[0], legacy[0].astype(np.float32))
    assert not _keys(pset.vectors[:1]).isdisjoint(_keys(legacy.astype(np.float32)))


def test_default_training_commands_draw_from_the_training_range(tmp_path, monkeypatch):
    drawn = []
    real = train.render_set

    def spy(n, *, domain, seed, **kw):
        drawn.append((domain, seed))
        return real(n, domain=domain, seed=seed, **kw)

    monkeypatch.setattr(train, "render_set", spy)
    small = ["--steps", "1", "--n-images", "4", "--batch", "2", "--threads", "1",
             "--out", str(tmp_path / "w"), "--ship", str(tmp_path / "s")]
    train.main(["generator", *small])
    train.main(["oracle", *small])
    train.main(["generator", "--data-seed", "0", *small])
    assert drawn[0] == ("photo", seeds.training_seed("photo", 0))
    assert drawn[1] == ("photo", seeds.training_seed("photo", 0))
    assert drawn[2] == ("photo", 100)  # the oracle's held-out set: an evaluation seed
    assert drawn[3] == ("photo", 0)  # --data-seed 0: the legacy stream the shipped records name
