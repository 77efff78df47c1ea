"""Running the networks: how a verified weight file becomes something that turns face crops into outputs.

Per family, a loader reads the verified bytes and returns a runner whose ``run(crops)`` gives
(embeddings, logits, valence/arousal): EmotiEffLib on onnxruntime (:mod:`.emotiefflib_onnx`) or in
torch (:mod:`.emotiefflib_torch`), DDAMFN (:mod:`.ddamfn`), the FER2013 mini-Xception (:mod:`.fer`).
Around them: crop pre-processing (:mod:`.preprocessing`), where a torch model runs and in which
precision (:mod:`.torch_runtime`), the EmotiEffLib ONNX graph's classifier and fp16 copy
(:mod:`.onnx_graph`), int8 copies (:mod:`.quantise`), which engine and batch size a device gets
(:mod:`.engine`) and the one face-model interface the runners are adapted to (:mod:`.face_model`).
:func:`affectflow.models.faces.load_face_model` picks the loader.
"""
