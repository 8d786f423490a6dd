"""stanviewer: review rehabilitation videos with per-frame explanations of a video classifier.

Research software. The scores it shows explain what a classifier looked at; they are not a diagnosis.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "Research tool, not a medical device. Scores show which frames influenced a classifier's decision; "
    "they are not a diagnosis. The bundled model was trained on synthetic videos only."
)
