"""Synthetic rehabilitation videos: a person-like figure doing shoulder exercises, with labels."""

from stanviewer.core.synth.dataset import (
    CLASSES,
    VISIBLE,
    SubjectSpec,
    VideoSpec,
    make_dataset,
    make_video,
    random_subject,
    random_video_spec,
)

__all__ = [
    "CLASSES",
    "VISIBLE",
    "SubjectSpec",
    "VideoSpec",
    "make_dataset",
    "make_video",
    "random_subject",
    "random_video_spec",
]
