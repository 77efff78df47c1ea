"""A pre-trained model's class names onto Aff-Wild2's classes."""

import pytest

from affectflow.fuse.class_names import affwild2_mapping
from affectflow.fuse.errors import FuseError
from affectflow.fuse.postprocess import (
    AFFECTNET7_CLASSES,
    AFFECTNET7_TO_AFFWILD2,
    AFFECTNET8_CLASSES,
    AFFECTNET8_TO_AFFWILD2,
    FER2013_CLASSES,
    FER2013_TO_AFFWILD2,
)


def test_class_name_mappings():
    assert affwild2_mapping(FER2013_CLASSES) == FER2013_TO_AFFWILD2
    assert affwild2_mapping(AFFECTNET8_CLASSES) == AFFECTNET8_TO_AFFWILD2
    assert affwild2_mapping(AFFECTNET7_CLASSES) == AFFECTNET7_TO_AFFWILD2
    native = ("Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
    assert affwild2_mapping(native) == (0, 4, 5, 6, 3, 2, 1, 7)
    with pytest.raises(FuseError, match="no Aff-Wild2 counterpart"):
        affwild2_mapping(("joy", "anger"))


def test_two_names_of_one_class_are_refused():
    with pytest.raises(FuseError, match="map two classes to one Aff-Wild2 class"):
        affwild2_mapping(("happy", "Happiness", "sad"))
