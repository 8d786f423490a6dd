"""``pose``: MediaPipe Pose (BlazePose, 33 landmarks) as an optional ROI provider.

Only ``mediapipe==0.10.21`` still ships a pose model inside its wheel (the ``solutions.pose`` API with
``model_complexity=1``; the other complexities try to download a model and fail offline; later
releases ship none). Its declared requirements would break stanviewer's base install (``numpy<2``
downgrades numpy; ``opencv-contrib-python`` silently overwrites ``opencv-python-headless``'s files; jax
and jaxlib add ~330 MB that pose estimation does not use), yet it imports and runs with numpy 2 and
the headless OpenCV. So it is installed in two steps (:data:`INSTALL_HINT`): the ``pose`` extra brings
the few packages ``solutions.pose`` imports, then mediapipe itself without its requirements.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from stanviewer.core.errors import RoiError
from stanviewer.core.progress import Job, Progress
from stanviewer.core.roi.base import RoiProvider, boxes_from_joints, register
from stanviewer.core.video import VideoReader

__all__ = ["INSTALL_HINT", "PoseProvider", "load_pose_module", "pose_joints"]

MEDIAPIPE_VERSION = "0.10.21"
INSTALL_HINT = (
    f"The 'pose' ROI provider needs MediaPipe {MEDIAPIPE_VERSION} (the last release that ships a pose model)."
    " Install it beside stanviewer with these two commands:\n"
    '    pip install "stanviewer[pose]"\n'
    f"    pip install --no-deps mediapipe=={MEDIAPIPE_VERSION}\n"
    "(--no-deps keeps numpy 2 and opencv-python-headless: mediapipe's own requirements would downgrade"
    " numpy and install opencv-contrib-python over OpenCV.) Or use another provider: --provider motion."
)


def load_pose_module() -> Any:
    """``mediapipe.solutions.pose``, or :class:`RoiError` with :data:`INSTALL_HINT` when unavailable."""
    try:
        import mediapipe as mp  # type: ignore[import-not-found]
    except ImportError as e:
        raise RoiError(f"MediaPipe is not installed ({e}). {INSTALL_HINT}") from e
    except Exception as e:  # a broken install (e.g. a missing requirement of mediapipe's own)
        raise RoiError(f"MediaPipe cannot be imported ({type(e).__name__}: {e}). {INSTALL_HINT}") from e
    solutions = getattr(mp, "solutions", None)
    pose = getattr(solutions, "pose", None)
    if pose is None:
        version = getattr(mp, "__version__", "?")
        raise RoiError(f"MediaPipe {version} has no bundled pose model (solutions.pose). {INSTALL_HINT}")
    return pose


def pose_joints(image: np.ndarray, estimator: Any, min_visibility: float) -> tuple[np.ndarray, float]:
    """Run a MediaPipe ``Pose`` object on one RGB image.

    Args:
        image: uint8 [H, W, 3] RGB.
        estimator: a ``mediapipe.solutions.pose.Pose``.
        min_visibility: landmarks less visible than this are NaN.

    Returns:
        ``(joints float32 [33, 2] pixels with NaN, confidence)``; all NaN and 0 when nobody is found.
    """
    h, w = image.shape[:2]
    res = estimator.process(np.ascontiguousarray(image))
    out = np.full((33, 2), np.nan, np.float32)
    if res.pose_landmarks is None:
        return out, 0.0
    lm = np.array([(p.x * w, p.y * h, p.visibility) for p in res.pose_landmarks.landmark], np.float64)
    vis = lm[:, 2] >= min_visibility
    out[vis] = lm[vis, :2]
    conf = float(np.mean(lm[vis, 2])) if vis.sum() >= 2 else 0.0
    return out, conf


@register("pose")
class PoseProvider(RoiProvider):
    """MediaPipe Pose on every ``every``-th frame (others are interpolated); optional extra."""

    defaults: ClassVar[dict[str, Any]] = {"every": 1, "min_visibility": 0.5, "joint_pad": 0.05, "model_complexity": 1}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if int(self.params["model_complexity"]) != 1:
            raise RoiError(
                f"MediaPipe {MEDIAPIPE_VERSION} ships only the model_complexity=1 pose model"
                " (the others would be downloaded, which stanviewer never does)"
            )
        if int(self.params["every"]) < 1:
            raise RoiError("pose parameter 'every' must be >= 1")

    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        mp_pose = load_pose_module()
        n = reader.frame_count
        every = int(self.params["every"])
        joints = np.full((n, 33, 2), np.nan, np.float32)
        conf = np.zeros(n)
        with mp_pose.Pose(static_image_mode=every > 1, model_complexity=1) as est:
            for i, frame in reader.iter_frames():
                if i % every:
                    continue
                joints[i], conf[i] = pose_joints(frame, est, float(self.params["min_visibility"]))
                if i % 20 == 0:
                    yield Progress(i, n, "pose")
        boxes = boxes_from_joints(joints, float(self.params["joint_pad"])).astype(np.float64)
        conf = np.where(np.isfinite(boxes).all(axis=1), conf, 0.0)
        yield Progress(n, n, "pose done")
        return boxes, conf, joints
