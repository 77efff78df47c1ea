"""Every model affectflow knows, and everything needed to run it.

Four layers, each its own subpackage: :mod:`.catalogue` (the registry of models,
their weight files and how they are fetched and verified, run manifests),
:mod:`.networks` (the networks rebuilt in plain torch), :mod:`.runtimes` (loading
verified files and running them on onnxruntime or torch) and :mod:`.standins`
(random-weight stand-ins in the upstream file formats). :mod:`.faces` is the one
entry point for face models (``load_face_model``). Importing this package loads
only the registry (no torch, no onnxruntime).
"""

from affectflow.models.catalogue.registry import REGISTRY, ModelSpec, get

__all__ = ["REGISTRY", "ModelSpec", "get"]
