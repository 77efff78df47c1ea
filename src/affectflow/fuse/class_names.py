"""A pre-trained face model's classes mapped to the 8 Aff-Wild2 classes by name.

The confidence filter replaces a frame's posterior by the pre-trained model's answer, so its classes must
land on Aff-Wild2's; models list them in their own order and spelling (FER2013's 7, AffectNet-7/8), which
the face features record in their ``classes`` attribute.
"""

from __future__ import annotations

from collections.abc import Sequence

from affectflow.fuse.errors import FuseError

#: class name (lower case) -> Aff-Wild2 index (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise, Other)
AFFWILD2_BY_NAME: dict[str, int] = {
    "neutral": 0, "anger": 1, "angry": 1, "disgust": 2, "disgusted": 2, "fear": 3, "fearful": 3, "afraid": 3,
    "happiness": 4, "happy": 4, "sadness": 5, "sad": 5, "surprise": 6, "surprised": 6, "contempt": 7, "other": 7,
}


def affwild2_mapping(classes: Sequence[str]) -> tuple[int, ...]:
    """Index mapping from a model's class names (any order) to the 8 Aff-Wild2 classes."""
    out = []
    for name in classes:
        key = str(name).strip().lower()
        if key not in AFFWILD2_BY_NAME:
            raise FuseError(f"pre-trained class {name!r} has no Aff-Wild2 counterpart (classes: {list(classes)})")
        out.append(AFFWILD2_BY_NAME[key])
    if len(set(out)) != len(out):
        raise FuseError(f"pre-trained classes {list(classes)} map two classes to one Aff-Wild2 class")
    return tuple(out)
