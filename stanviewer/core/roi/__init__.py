"""Find the person in every frame: ROI providers, shared post-processing, caching.

Every provider returns a :class:`RoiTrack`: boxes ``float32 [N, 4]`` ``(x0, y0, x1, y1)`` in the pixels
of frames as read (``VideoReader.size``), a confidence per frame and, where known, 2-D joints.

Providers (``make_provider(name, **params)``; each ``track(reader)`` is a job):

- ``motion`` (default, no extra dependency): background model + frame differencing for a fixed camera,
  with the static body recovered by colour segmentation seeded from the motion (:mod:`.motion`);
- ``pose``: MediaPipe Pose, an optional extra (:mod:`.pose`);
- ``skeleton``: NTU RGB+D ``.skeleton`` files (:mod:`.skeleton`);
- ``csv``: boxes ``frame,x,y,w,h`` or joints ``frame,x,y,...`` (:mod:`.files`);
- ``learned``: a small person detector trained on videos with known boxes (:mod:`.learned`; the bundled
  one knows only the synthetic figure);
- ``checked``: ``motion`` boxes, replaced for the whole video by the ``learned`` detector's where the
  motion crop square is off from the detector's (:mod:`.checked`);
- ``none``: the whole frame.

:func:`compute_roi` runs one and caches the result per video. Use :meth:`RoiTrack.crop_square` (one
square per video, robust statistics) to crop, never each video's or frame's own motion extent, which
leaks the label (DESIGN.md §6); :mod:`.leak` measures that.
"""

from stanviewer.core.roi.base import PROVIDERS, RoiProvider, boxes_from_joints, make_provider, register
from stanviewer.core.roi.cache import compute_roi
from stanviewer.core.roi.checked import CheckedProvider, square_off
from stanviewer.core.roi.files import CsvProvider, NoneProvider, read_roi_csv
from stanviewer.core.roi.learned import LearnedProvider
from stanviewer.core.roi.motion import MotionProvider
from stanviewer.core.roi.pose import PoseProvider
from stanviewer.core.roi.post import clamp_boxes, expand_boxes, fill_gaps, finish_boxes, smooth_boxes
from stanviewer.core.roi.skeleton import SkeletonProvider, read_skeleton
from stanviewer.core.roi.track import RoiTrack, box_iou

FILE_PROVIDERS = ("truth", "csv", "skeleton")  # boxes read from files: a new video has none


def inference_provider(name: str) -> str:
    """The provider to use on a new video for a model trained with ``name`` boxes.

    Models trained with boxes from files (the synthetic generator's ``truth``, ``csv``, ``skeleton``)
    get ``motion`` boxes on videos that come without such files; other providers are used as they are.
    """
    return "motion" if name in FILE_PROVIDERS else name


__all__ = [
    "FILE_PROVIDERS",
    "PROVIDERS",
    "CheckedProvider",
    "CsvProvider",
    "LearnedProvider",
    "MotionProvider",
    "NoneProvider",
    "PoseProvider",
    "RoiProvider",
    "RoiTrack",
    "SkeletonProvider",
    "box_iou",
    "boxes_from_joints",
    "clamp_boxes",
    "compute_roi",
    "expand_boxes",
    "fill_gaps",
    "finish_boxes",
    "inference_provider",
    "make_provider",
    "read_roi_csv",
    "read_skeleton",
    "register",
    "smooth_boxes",
    "square_off",
]
