"""What models exist and which bytes are theirs.

:mod:`.registry` names every model (files, hashes, pre-processing, outputs,
licence); :mod:`.weights` finds, fetches and verifies weight files (HTTP
transfers in :mod:`.download`, the :class:`~.weight_file.WeightFile` record and
the user's pins in :mod:`.weight_file`); :mod:`.manifest` records which verified
files a run used; :mod:`.onnx_weights` puts a verified ONNX file's weights onto a
torch module. Nothing here builds or runs a network: the catalogue sits below
:mod:`affectflow.models.networks`, :mod:`affectflow.models.runtimes` and
:mod:`affectflow.models.standins`, which all read it.
"""
