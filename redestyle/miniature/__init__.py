"""A miniature world of procedural faces whose every parameter is known (ground truth for tiny models).

``render`` draws one face from explicit ``FaceParams`` in two domains: ``"photo"`` (soft shading,
realistic proportions) and ``"portrait"`` (a flat-colour cartoon style of the same face). Only
numpy is needed (``redestyle.imaging.to_tensor`` turns renders into tensors).

Beside it: ``models`` (the ``mini`` networks and their shipped files), ``train`` (the stages
that train them on renders), ``oracle`` (the CNN that reads parameters back: the ruler of the ground-truth metrics) and
``world`` (portrait sets with known answers, their scores, and the quality checks).
"""

from redestyle.miniature.render import (
    DOMAINS,
    HAIR_STYLES,
    LABELS,
    VECTOR_NAMES,
    Expression,
    FaceParams,
    Identity,
    landmarks,
    render,
    render_batch,
    sample_expression,
    sample_identity,
    sample_params,
    segment,
)

__all__ = [
    "DOMAINS",
    "HAIR_STYLES",
    "LABELS",
    "VECTOR_NAMES",
    "Expression",
    "FaceParams",
    "Identity",
    "landmarks",
    "render",
    "render_batch",
    "sample_expression",
    "sample_identity",
    "sample_params",
    "segment",
]
