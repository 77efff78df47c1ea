"""Faces stage: decode each video once, detect faces, keep the largest, store square crops.

Output per video (``faces/{detector}/{shard}.h5``, one record per video):
``frame_index`` (int32, N analysed frames), ``timestamps`` (float64 s, from the
decoder's presentation times), ``has_face`` (bool), ``bbox`` (float32 N x 4,
x0 y0 x1 y1 pixels, NaN without a face), ``score`` (float32, 0 without),
``landmarks`` (float32 N x K x 2, NaN without), ``crops`` (uint8 N x S x S x 3
RGB, zeros without), ``n_faces`` (int16, faces found); attributes width,
height, rotation, n_frames_decoded, detector, frame_stride, n_with_face, and
warnings (a list: no face in any analysed frame, several faces in some).
"""

from affectflow.faces.contact_sheet import write_contact_sheet, write_contact_sheets
from affectflow.faces.crops import crop_square
from affectflow.faces.detectors import (
    Detection,
    FaceDetector,
    MediaPipeDetector,
    RetinaFaceDetector,
    make_detector,
)
from affectflow.faces.errors import FaceStageError, VideoError
from affectflow.faces.organiser import OrganiserCropsSource
from affectflow.faces.stage import FacesOptions, FacesStageResult, detect_video, run_faces_stage

__all__ = [
    "Detection",
    "FaceDetector",
    "FaceStageError",
    "FacesOptions",
    "FacesStageResult",
    "MediaPipeDetector",
    "OrganiserCropsSource",
    "RetinaFaceDetector",
    "VideoError",
    "crop_square",
    "detect_video",
    "make_detector",
    "run_faces_stage",
    "write_contact_sheet",
    "write_contact_sheets",
]
