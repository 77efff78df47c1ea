"""A stand-in network written in its upstream file format: ONNX as EmotiEffLib exported its models,
TorchScript as uniface exported DDAMFN++, a state-dict checkpoint as DDAMFN's training scripts save one.

The bytes are what the real loading code parses, so the format details matter: opset, names and
axes of the ONNX export; a TorchScript archive without path-dependent debug records; and, because
a TorchScript archive stores each class's qualified name, the module name the classes are archived
under (``archive_module``), kept fixed so that a stand-in's bytes do not depend on where its network's
source file lives.

Details: docs/models.md, section "Face stand-ins".
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import Any

OPSET = 11  # EmotiEffLib convert_pt_to_onnx.py
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_AXIS = "batch_size"


def export_onnx(model: Any, input_size: int) -> bytes:
    """``model`` as ONNX bytes, exported as EmotiEffLib's convert_pt_to_onnx.py does."""
    import torch

    dummy = torch.zeros(1, 3, input_size, input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from the 'same'-padding arithmetic, deprecation notes
        torch.onnx.export(
            model, (dummy,), buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
            export_params=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
        )
    return buf.getvalue()


def export_torchscript(model: Any, input_size: int, *, archive_module: str | None = None) -> bytes:
    """``model`` traced (``torch.jit.trace``) and saved as a TorchScript archive, without debug records.

    The ``*.debug_pkl`` records hold the Python stack of every traced op, with
    absolute paths of this checkout and its virtual environment, so the same
    network would hash differently in every clone; ``torch.jit.load`` does not
    need them. The archive is rewritten record by record with torch's own
    writer (which keeps its alignment rules) and without them.

    ``archive_module``: the module name the archive records for the classes of
    ``model``'s own module (``__torch__.<archive_module>.<Class>``; None: where
    they are defined). The archive stores those names, so moving the network's
    source file would otherwise change the stand-in's bytes and its recorded hash.
    """
    import torch

    dummy = torch.zeros(1, 3, input_size, input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings
        with _archived_as(model, archive_module):
            torch.jit.save(torch.jit.trace(model, (dummy,), strict=False), buf)
    reader = torch._C.PyTorchFileReader(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(out)
    written_by_writer = {"version", ".data/version", ".data/serialization_id", "byteorder"}
    for name in sorted(reader.get_all_records()):
        if name.endswith(".debug_pkl") or name in written_by_writer:
            continue
        data = reader.get_record(name)
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    return out.getvalue()


def export_state_dict(model: Any) -> bytes:
    """``model``'s weights as the DDAMFN training scripts save them: ``{"model_state_dict": ...}``."""
    import torch

    buf = io.BytesIO()  # a buffer, not a path: torch.save names the archive's root folder after the file
    torch.save({"iter": 0, "model_state_dict": model.state_dict()}, buf)
    return buf.getvalue()


@contextlib.contextmanager
def _archived_as(model: Any, module_name: str | None) -> Iterator[None]:
    """For the block, every class defined in ``model``'s own module reports ``module_name`` as its module (the
    name TorchScript archives it under); restored afterwards."""
    if module_name is None:
        yield
        return
    home = type(model).__module__
    classes = {type(m) for m in model.modules() if type(m).__module__ == home}
    try:
        for cls in classes:
            cls.__module__ = module_name
        yield
    finally:
        for cls in classes:
            cls.__module__ = home
