"""Seeded fuzzing of the analysis result loaders: the analysis folder (analysis.json, scores.csv,
windows.csv) and heatmaps.zip. Damaged files give a StanError naming the file (or load cleanly)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import assert_no_leaks, blobs, fuzz_loader, json_mutants

from stanviewer.core.explain.heatmaps import HeatmapReader, HeatmapWriter
from stanviewer.core.explain.result import Analysis
from stanviewer.core.explain.store import load_analysis, save_analysis

N = 40


def _analysis(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    heat = folder.parent / "heat.zip"
    w = HeatmapWriter(heat, N, 64, 48, side=16)
    for i in range(N):
        w.put(i, rng.random((w.h, w.w)) if i % 3 else None)
    w.close()
    a = Analysis(
        scores=rng.random(N).astype(np.float32),
        raw=rng.normal(size=N).astype(np.float32),
        window_prob=rng.random(N).astype(np.float32),
        times=np.arange(N) / 25.0,
        windows=[{"phase": 0, "start": s, "end": s + 15, "evidence": 0.5 - s / 40, "prob": 0.3} for s in (0, 8, 16)],
        prediction={"class": "compensation", "probs": {"compensation": 0.7, "normal": 0.3}},
        meta={"video": {"path": "clip.mp4", "frames": N, "fps": 25.0}, "method": "grad", "threshold": 0.5},
        heatmap_path=heat,
    )
    return save_analysis(a, folder, labels=(np.arange(N) % 5 == 0).astype(np.uint8))


@pytest.mark.parametrize("name", ["analysis.json", "scores.csv", "windows.csv"])
def test_analysis_folder_fuzzed(name: str, tmp_path: Path) -> None:
    """Before the fix: analysis.json 7 of 500 leaked TypeError ("heatmaps": true), scores.csv 60 of 300
    TypeError (short rows), windows.csv 249 of 300 (UnicodeDecodeError 104, KeyError 58, ValueError 46,
    TypeError 41: windows.csv was parsed outside the error handling)."""
    valid = _analysis(tmp_path / "valid")
    assert len(load_analysis(valid).scores) == N
    folder = tmp_path / "fuzz"
    shutil.copytree(valid, folder)
    rng = random.Random(301 + ["analysis.json", "scores.csv", "windows.csv"].index(name))
    data = (valid / name).read_bytes()
    cases = blobs(data, rng) + (json_mutants(data, rng, 200) if name.endswith(".json") else [])

    def load(p: Path) -> Analysis:
        a = load_analysis(folder)
        if a.heatmap_path is not None:  # what a viewer does next
            HeatmapReader(a.heatmap_path).close()
        return a

    assert_no_leaks(fuzz_loader(load, folder / name, cases, names=folder))


def test_heatmaps_fuzzed(tmp_path: Path) -> None:
    """Before the fix all 300 leaked (BadZipFile 279, zlib.error 16, KeyError 2, NotImplementedError 2,
    EOFError 1); now a HeatmapError (a StanError) naming the file."""
    valid = _analysis(tmp_path / "valid") / "heatmaps.zip"
    r = HeatmapReader(valid)
    assert r.get(N - 1).shape == (r.h, r.w)
    r.close()
    cases = blobs(valid.read_bytes(), random.Random(304))

    def read_all(p: Path) -> None:
        reader = HeatmapReader(p)
        try:
            for i in range(N):
                m = reader.get(i)
                assert m.shape == (reader.h, reader.w) and m.dtype == np.float32
                assert np.isfinite(m).all()
        finally:
            reader.close()

    assert_no_leaks(fuzz_loader(read_all, tmp_path / "heatmaps.zip", cases))
