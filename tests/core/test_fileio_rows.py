"""The shared CSV writer of evaluate and train; the distinct output names of batch commands."""

from __future__ import annotations

import csv
from pathlib import Path

from stanviewer.core.fileio import distinct_names, write_dict_rows


def test_columns_in_order_of_first_appearance_and_floats_formatted(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rows.csv"
    write_dict_rows(path, [{"a": 1, "b": 0.123456}, {"c": "x", "a": 2}], ".4f")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["a", "b", "c"], ["1", "0.1235", ""], ["2", "", "x"]]
    assert [p.name for p in path.parent.iterdir()] == ["rows.csv"]  # no temporary file left


def test_plain_values_without_a_float_format(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    write_dict_rows(path, [{"loss": 0.5, "epoch": 1}])
    assert path.read_text().splitlines() == ["loss,epoch", "0.5,1"]


def test_distinct_names_prefix_parent_folders_only_where_file_names_meet(tmp_path: Path) -> None:
    paths = [
        tmp_path / "a" / "p01" / "trial1.mp4",
        tmp_path / "b" / "p01" / "trial1.mp4",
        tmp_path / "c" / "p02" / "trial1.mp4",
        tmp_path / "Übung 3" / "trial2.mp4",
        tmp_path / "a" / "p01" / "trial1.mp4",  # the same file again: the same name
    ]
    assert distinct_names(paths) == ["a_p01_trial1", "b_p01_trial1", "p02_trial1", "trial2", "a_p01_trial1"]
    assert distinct_names([tmp_path / "x" / "v.mp4", tmp_path / "Übung 1" / "v.avi"]) == ["x_v", "Übung 1_v"]
    assert distinct_names([]) == []
    # one folder, one name, two containers: the extension tells them apart (one output overwrote the other)
    same = [tmp_path / "in" / "trial.mp4", tmp_path / "in" / "trial.mkv", tmp_path / "in" / "trial.mp4"]
    assert distinct_names(same) == ["trial_mp4", "trial_mkv", "trial_mp4"]
    assert distinct_names([*same[:2], tmp_path / "other" / "trial.mp4"]) == ["trial_mp4", "trial_mkv", "trial"]


def test_files_the_tool_writes_get_normal_permissions(tmp_path: Path) -> None:
    """Checkpoints (safetensors makes its file 0600), detectors and videos follow the umask like any file."""
    import os

    import numpy as np

    from stanviewer.core.encode import VideoWriter
    from stanviewer.core.fileio import current_umask
    from stanviewer.core.models.checkpoint import save_checkpoint
    from stanviewer.core.models.stan import STAN, ModelSpec
    from stanviewer.core.roi.detector import DetectorConfig, PersonDetector, save_detector

    old = os.umask(0o022)
    try:
        assert current_umask() == 0o022
        micro = {"depth": [1, 1, 1, 1], "embed_dim": [16, 32, 64, 64], "head_dim": 16, "name": "micro"}
        spec = ModelSpec(views="global", frames=8, size=32, backbone=micro)
        ck = save_checkpoint(tmp_path / "m.safetensors", STAN(spec), {"name": "perm"})
        det = save_detector(PersonDetector(DetectorConfig()), tmp_path / "d.safetensors")
        with VideoWriter(tmp_path / "v.mp4", 25) as w:
            for _ in range(3):
                w.write(np.zeros((32, 32, 3), np.uint8))
        for p in (ck, det, tmp_path / "v.mp4"):
            assert os.stat(p).st_mode & 0o777 == 0o644, p.name
    finally:
        os.umask(old)
