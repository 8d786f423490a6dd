"""Exact frame access (DESIGN.md §3): ``frame(i)`` must equal the i-th frame of a sequential decode.

Every reference is a plain sequential PyAV decode of the same file (``decode_all`` in conftest), so any
off-by-one from B-frame reordering, a wrong keyframe or a sloppy seek shows up as a pixel mismatch.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from stanviewer.core.encode import VideoWriter
from stanviewer.core.errors import VideoError
from stanviewer.core.paths import cache_dir
from stanviewer.core.video import VideoReader, open_video, window_starts

RefFn = Callable[[Path], list[np.ndarray]]


def _assert_distinct(ref: list[np.ndarray]) -> None:
    """The test pattern must make neighbouring frames differ, or an off-by-one would pass unnoticed."""
    for a, b in itertools.pairwise(ref):
        assert not np.array_equal(a, b)


def _in_time(fn: Callable[[], object], timeout: float = 30.0) -> object:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it takes longer than ``timeout``."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the test's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"no answer within {timeout} s (hang)"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# ---------------------------------------------------------------------------------------------- exactness
FORMATS = ["h264_bframes", "mp4v_file", "mjpeg_file", "mkv_file", "mpegts_file", "mpegps_file"]


def _write_av(path: Path, n: int, codec: str, fmt: str, pattern_frame: Callable[..., np.ndarray], **opts: str) -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.options = dict(opts)
        for i in range(n):
            for pkt in s.encode(av.VideoFrame.from_ndarray(pattern_frame(i, 96, 64), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


@pytest.fixture(scope="module")
def mpegts_file(tmp_path_factory: pytest.TempPathFactory, pattern: Callable[..., np.ndarray]) -> Path:
    """H.264 in MPEG-TS (camcorders' .mts): the keyframe's packet comes before its presentation time, so
    seeking to its pts landed on the next keyframe (no frame decoded at all with one GOP)."""
    return _write_av(tmp_path_factory.mktemp("ts") / "clip.ts", 60, "h264", "mpegts", pattern, bf="2", g="25")


@pytest.fixture(scope="module")
def mpegps_file(tmp_path_factory: pytest.TempPathFactory, pattern: Callable[..., np.ndarray]) -> Path:
    """MPEG-2 in an MPEG program stream (.mpg, DVD): 36 of 60 frames were indexed, frame 0 unreachable."""
    return _write_av(tmp_path_factory.mktemp("ps") / "clip.mpg", 60, "mpeg2video", "mpeg", pattern, bf="2", g="12")


@pytest.mark.parametrize("fixture", FORMATS)
def test_frame_i_equals_sequential_decode(
    fixture: str, request: pytest.FixtureRequest, reference_frames: RefFn
) -> None:
    path: Path = request.getfixturevalue(fixture)
    ref = reference_frames(path)
    _assert_distinct(ref)
    with open_video(path, cache_bytes=0) as r:  # no cache: every frame(i) really seeks and decodes
        n = len(ref)
        assert r.frame_count == n
        keys = np.searchsorted(r.index.pts, r.index.keyframe_pts)
        rng = np.random.default_rng(1234)
        # Random indices in random order, plus each keyframe and its neighbours (the edges of every GOP).
        around_keys = [int(k) + d for k in keys for d in (-2, -1, 0, 1, 2) if 0 <= int(k) + d < n]
        indices = [*rng.integers(0, n, 40).tolist(), *rng.permutation(around_keys).tolist(), n - 1, 0, n - 1]
        for i in indices:
            assert np.array_equal(r.frame(i), ref[i]), f"frame {i} differs from the sequential decode"


def test_long_gop_file_really_has_long_gops_and_b_frames(h264_bframes: Path) -> None:
    with open_video(h264_bframes) as r:
        assert r.info.keyframes == 3  # 300 frames, GOP 120: keyframes at 0, 120, 240
        keys = np.searchsorted(r.index.pts, r.index.keyframe_pts).tolist()
        assert keys == [0, 120, 240]
    with av.open(str(h264_bframes)) as c:
        types = {av.video.frame.PictureType(f.pict_type).name for f in c.decode(video=0)}
    assert "B" in types


@pytest.mark.parametrize("fixture", ["h264_bframes", "mkv_file"])
def test_backward_stepping_across_keyframes(
    fixture: str, request: pytest.FixtureRequest, reference_frames: RefFn
) -> None:
    path: Path = request.getfixturevalue(fixture)
    ref = reference_frames(path)
    with open_video(path) as r:
        # Step back one frame at a time from the end across two keyframes.
        for i in range(len(ref) - 1, len(ref) - 140, -1):
            assert np.array_equal(r.frame(i), ref[i]), f"frame {i} (stepping backwards)"
        # Then jump around: far back, forward within a GOP, forward across GOPs, back again.
        for i in (3, 119, 120, 121, 7, 239, 240, 241, 118, 0):
            assert np.array_equal(r.frame(i), ref[i]), f"frame {i} (jumping)"


def test_iter_frames_and_frames_match(h264_bframes: Path, reference_frames: RefFn) -> None:
    ref = reference_frames(h264_bframes)
    with open_video(h264_bframes) as r:
        got = list(r.iter_frames())
        assert [i for i, _ in got] == list(range(len(ref)))
        assert all(np.array_equal(f, ref[i]) for i, f in got)
        part = list(r.iter_frames(115, 125))
        assert [i for i, _ in part] == list(range(115, 125))
        assert all(np.array_equal(f, ref[i]) for i, f in part)
        idx = [250, 3, 3, 121, 299, 0]
        stack = r.frames(idx)
        assert stack.shape == (len(idx), *ref[0].shape)
        for k, i in enumerate(idx):
            assert np.array_equal(stack[k], ref[i])
        assert r.frames([]).shape == (0, *ref[0].shape)


def test_out_of_range_and_closed(mjpeg_file: Path) -> None:
    r = open_video(mjpeg_file)
    n = r.frame_count
    for bad in (-1, n, n + 10):
        with pytest.raises(IndexError):
            r.frame(bad)
    r.close()
    with pytest.raises(VideoError, match="closed"):
        r.frame(5)


def test_concurrent_readers_of_one_reader_stay_exact(h264_bframes: Path, reference_frames: RefFn) -> None:
    """One decoder thread and the caller may share a reader (the lock serialises decoding)."""
    ref = reference_frames(h264_bframes)
    errors: list[str] = []
    with open_video(h264_bframes, cache_bytes=0) as r:

        def worker(seed: int) -> None:
            rng = np.random.default_rng(seed)
            for i in rng.integers(0, len(ref), 15).tolist():
                if not np.array_equal(r.frame(i), ref[i]):
                    errors.append(f"frame {i}")

        threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors


# ------------------------------------------------------------------------------------------------ windows
def test_window_starts() -> None:
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(10, 4, 4) == [0, 4, 6]  # last window aligned to the end: the tail is covered
    assert window_starts(10, 3, 2, step=2) == [0, 2, 4, 5]  # span 5
    assert window_starts(3, 8, 1) == [0]  # shorter than a window: one (padded) window
    for bad in ((10, 0, 1), (10, 4, 0), (10, 4, 1, 0)):
        with pytest.raises(ValueError):
            window_starts(*bad)


def test_iter_windows_match_sequential_frames(h264_bframes: Path, reference_frames: RefFn) -> None:
    ref = reference_frames(h264_bframes)
    n = len(ref)
    length, stride, step = 8, 20, 3
    with open_video(h264_bframes) as r:
        windows = list(r.iter_windows(length, stride, step=step))
    starts = window_starts(n, length, stride, step)
    assert [w.start for w in windows] == starts
    covered: set[int] = set()
    for w in windows:
        assert w.indices.tolist() == [w.start + k * step for k in range(length)]
        assert w.frames.shape == (length, *ref[0].shape)
        for k, i in enumerate(w.indices.tolist()):
            assert np.array_equal(w.frames[k], ref[i]), f"window {w.start}, frame {i}"
        covered.update(range(w.indices[0], w.indices[-1] + 1))
    assert covered == set(range(n))  # every frame lies inside some window, the tail included
    assert windows[-1].indices[-1] == n - 1


def test_iter_windows_resized(mkv_file: Path) -> None:
    with open_video(mkv_file) as r:
        w = next(iter(r.iter_windows(4, 4, size=(32, 24))))
    assert w.frames.shape == (4, 24, 32, 3)
    assert w.frames.dtype == np.uint8


def test_short_video_gives_one_padded_window(make_video: Callable[..., Path], reference_frames: RefFn) -> None:
    """Documented: a video shorter than one window yields one window padded with its last frame."""
    path = make_video("five_frames.mp4", 5, "h264", gop=12)
    ref = reference_frames(path)
    with open_video(path) as r:
        windows = list(r.iter_windows(16, 4))
    assert len(windows) == 1
    w = windows[0]
    assert w.start == 0
    assert w.indices.tolist() == [0, 1, 2, 3, 4] + [4] * 11
    for k, i in enumerate(w.indices.tolist()):
        assert np.array_equal(w.frames[k], ref[i])


# ---------------------------------------------------------------------------------------------------- time
PTS_MS = [0, 40, 80, 200, 233, 300, 500, 540, 541, 1000]


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_variable_frame_rate_times_are_exact(
    ext: str, video_dir: Path, pattern: Callable[..., np.ndarray], reference_frames: RefFn
) -> None:
    path = video_dir / f"vfr{ext}"
    if not path.exists():
        with VideoWriter(path, 25, "h264", time_base=Fraction(1, 1000), gop=30) as w:
            for i, pts in enumerate(PTS_MS):
                w.write(pattern(i), pts=pts)
    expected = np.array(PTS_MS, np.float64) / 1000.0
    with open_video(path) as r:
        assert r.frame_count == len(PTS_MS)
        assert r.info.variable_fps
        np.testing.assert_allclose(r.times(), expected, rtol=0, atol=1e-9)
        for i, t in enumerate(expected):
            assert r.time_of(i) == pytest.approx(t, abs=1e-9)
        assert r.fps == pytest.approx((len(PTS_MS) - 1) / 1.0)
        assert r.index_at_time(0.22) == 3  # frame 3 (0.2 s) is on screen until 0.233 s
        assert r.index_at_time(0.233) == 4
        assert r.index_at_time(0.299) == 4
        assert r.index_at_time(-1.0) == 0
        assert r.index_at_time(99.0) == len(PTS_MS) - 1
        ref = reference_frames(path)
        for i in (9, 0, 4, 8, 7):
            assert np.array_equal(r.frame(i), ref[i])


def test_constant_frame_rate_metadata(h264_bframes: Path) -> None:
    with open_video(h264_bframes) as r:
        info = r.info
        assert not info.variable_fps
        assert info.fps == pytest.approx(25.0)
        assert r.time_of(25) == pytest.approx(1.0)
        assert info.duration_s == pytest.approx(300 / 25)
        assert (info.width, info.height) == (96, 64)
        assert info.codec == "h264"
        assert info.rotation == 0
        assert not info.truncated
        text = info.summary()
        assert "300" in text and "25.000" in text


def test_absurd_frame_rate_is_refused(video_dir: Path, pattern: Callable[..., np.ndarray]) -> None:
    path = video_dir / "absurd_fps.mp4"
    with VideoWriter(path, 25, "mjpeg", time_base=Fraction(1, 1_000_000)) as w:
        for i in range(4):
            w.write(pattern(i), pts=i)  # one microsecond apart: a million frames per second
    with pytest.raises(VideoError, match="frame rate"):
        open_video(path)


# ---------------------------------------------------------------------------------------- odd pictures
def test_rotation_is_applied(video_dir: Path) -> None:
    """A phone-style display rotation comes out upright, as ffmpeg shows it."""
    img = np.zeros((64, 96, 3), np.uint8)
    img[:32, :48] = (255, 0, 0)  # red top-left quarter of the stored picture
    path = video_dir / "rotated.mp4"
    with VideoWriter(path, 25, "h264", rotation=90) as w:
        for _ in range(5):
            w.write(img)
    with open_video(path) as r:
        assert r.info.rotation == 90
        assert r.size == (64, 96)
        f = r.frame(2)
    assert f.shape == (96, 64, 3)
    # Display rotation 90 (counter-clockwise): the stored top-left quarter ends up bottom-left.
    red = f[..., 0].astype(int) - f[..., 1] > 128
    assert red[-40:, :25].all() and not red[:40].any() and not red[:, -25:].any()
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    raw = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(f.shape)
    assert np.abs(theirs.astype(int) - f).max() <= 2


def test_grayscale_gives_rgb(make_video: Callable[..., Path], reference_frames: RefFn) -> None:
    path = make_video("gray.mkv", 12, "ffv1-gray")
    with open_video(path) as r:
        assert r.info.pixel_format == "gray"
        f = r.frame(7)
    assert f.shape == (64, 96, 3) and f.dtype == np.uint8
    assert np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2])
    assert np.array_equal(f, reference_frames(path)[7])


def test_odd_size_mjpeg(make_video: Callable[..., Path], reference_frames: RefFn) -> None:
    path = make_video("odd_83x61.avi", 12, "mjpeg", size=(83, 61))
    ref = reference_frames(path)
    with open_video(path) as r:
        assert r.size == (83, 61)
        for i in (11, 0, 6):
            f = r.frame(i)
            assert f.shape == (61, 83, 3)
            assert np.array_equal(f, ref[i])


def test_huge_resolution_is_read_scaled_down(make_video: Callable[..., Path], reference_frames: RefFn) -> None:
    path = make_video("wide_4000x200.mp4", 4, "h264", size=(4000, 200), gop=4)
    with open_video(path, max_side=800) as r:
        assert (r.info.source_width, r.info.source_height) == (4000, 200)
        assert r.size == (800, 40)
        f = r.frame(3)
    assert f.shape == (40, 800, 3)
    full = reference_frames(path)[3]
    small = cv2.resize(full, (800, 40), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - f).mean() < 10  # swscale's and OpenCV's area filters differ a little


def test_resize_on_read(mjpeg_file: Path, reference_frames: RefFn) -> None:
    ref = reference_frames(mjpeg_file)[10]
    with open_video(mjpeg_file) as r:
        f = r.frame(10, size=(48, 32))
        assert f.shape == (32, 48, 3)
        assert r.frame(10).shape == ref.shape  # the resized copy is cached separately
    small = cv2.resize(ref, (48, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - f).mean() < 6


def test_paths_with_spaces_and_non_ascii(mjpeg_file: Path, tmp_path: Path, reference_frames: RefFn) -> None:
    folder = tmp_path / "my vidéos ünï 日本"
    folder.mkdir()
    path = folder / "séance 1 – patiënt ñ.avi"
    shutil.copy(mjpeg_file, path)
    ref = reference_frames(mjpeg_file)
    with open_video(path) as r:
        assert r.frame_count == len(ref)
        assert np.array_equal(r.frame(17), ref[17])
    with pytest.raises(VideoError) as e:
        open_video(folder / "absent vidéo.mp4")
    assert "absent vidéo.mp4" in str(e.value)


# ------------------------------------------------------------------------------------------- bad inputs
def _audio_only(path: Path) -> Path:
    """A one-second 440 Hz sine in AAC: a valid media file with no video stream."""
    with av.open(str(path), "w") as c:
        stream = c.add_stream("aac", rate=16000)
        t = np.arange(16000) / 16000
        for k in range(0, 16000, 1024):
            chunk = (0.3 * np.sin(2 * np.pi * 440 * t[k : k + 1024])).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = k
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return path


def _truncated(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def _text_file(path: Path) -> Path:
    path.write_text("frame,label\n0,1\n" * 200)  # a CSV renamed .mp4
    return path


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


BAD_INPUTS: dict[str, tuple[str, Callable[[Path, Path], Path]]] = {
    "missing": ("file not found", lambda d, v: d / "missing.mp4"),
    "directory": ("is a folder", lambda d, v: d),
    "empty": ("empty", lambda d, v: _empty_file(d / "empty.mp4")),
    "text": ("not a video", lambda d, v: _text_file(d / "notes.mp4")),
    "audio_only": ("no video stream", lambda d, v: _audio_only(d / "sine.m4a")),
    "mp4_moov_lost": ("damaged/truncated", lambda d, v: _truncated(v, d / "cut.mp4", 0.6)),
    "mkv_header_only": ("damaged/truncated", lambda d, v: _truncated(v, d / "stub.mkv", 0.01)),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_clear_video_error(case: str, tmp_path: Path, h264_bframes: Path, mkv_file: Path) -> None:
    reason, make = BAD_INPUTS[case]
    src = mkv_file if "mkv" in case else h264_bframes
    path = make(tmp_path, src)
    with pytest.raises(VideoError) as e:
        _in_time(lambda: open_video(path))
    msg = str(e.value)
    assert str(path) in msg, "the message names the file"
    assert reason in msg
    assert "\n" not in msg and len(msg) < 400
    assert e.value.path == path


def test_truncated_mkv_keeps_frames_that_decode(mkv_file: Path, tmp_path: Path, reference_frames: RefFn) -> None:
    ref = reference_frames(mkv_file)
    path = _truncated(mkv_file, tmp_path / "cut.mkv", 0.6)
    r = _in_time(lambda: open_video(path))
    assert isinstance(r, VideoReader)
    with r:
        assert r.info.truncated and r.index.truncated
        assert "ends early" in r.info.summary()
        n = r.frame_count
        assert 0.3 * len(ref) < n < len(ref)
        got = _in_time(lambda: list(r.iter_frames()))
        assert len(got) == n
        assert all(np.array_equal(f, ref[i]) for i, f in got)  # type: ignore[union-attr]
        assert np.array_equal(r.frame(n - 1), ref[n - 1])


def test_truncated_avi_is_flagged(mjpeg_file: Path, tmp_path: Path, reference_frames: RefFn) -> None:
    """AVI loses its index at the end; the header still counts every frame, so truncation is noticed."""
    ref = reference_frames(mjpeg_file)
    path = _truncated(mjpeg_file, tmp_path / "cut.avi", 0.5)
    with _in_time(lambda: open_video(path)) as r:  # type: ignore[union-attr]
        assert r.info.truncated
        assert 0 < r.frame_count < len(ref)
        assert np.array_equal(r.frame(r.frame_count - 1), ref[r.frame_count - 1])


def test_only_mpeg_streams_seek_early_or_fall_back_to_the_start(
    h264_bframes: Path, mkv_file: Path, mjpeg_file: Path, mpegts_file: Path, tmp_path: Path, monkeypatch
) -> None:
    """The pts - dts allowance and the rewind fallback are for MPEG-TS/PS: elsewhere each seek would land a
    GOP early (2-3x the decoding per random frame), and a cut-off AVI was decoded whole when opened."""
    from stanviewer.core import video as video_mod

    for path in (h264_bframes, mkv_file):
        with open_video(path, use_index_cache=False) as r:
            assert not r._mpeg_stream and r._open_gop == 0
    with open_video(mpegts_file, use_index_cache=False) as r:
        assert r._mpeg_stream and r.index.seek_back > 0
    rewinds = []
    monkeypatch.setattr(video_mod.VideoReader, "_rewind", lambda self: rewinds.append(1))
    with open_video(_truncated(mjpeg_file, tmp_path / "cut90.avi", 0.9), use_index_cache=False) as r:
        assert r.info.truncated and not rewinds


def test_complete_files_are_not_flagged_truncated(
    h264_bframes: Path, mp4v_file: Path, mjpeg_file: Path, mkv_file: Path
) -> None:
    for path in (h264_bframes, mp4v_file, mjpeg_file, mkv_file):
        with open_video(path) as r:
            assert not r.info.truncated, path


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to cut a clip")
def test_a_clip_cut_without_re_encoding_is_not_called_truncated(h264_bframes: Path, tmp_path: Path) -> None:
    """``ffmpeg -ss 1 -c copy``: the packets before the cut stay in the file, marked to discard (an edit list)."""
    cut = tmp_path / "cut.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "4", "-i", str(h264_bframes), "-c", "copy", str(cut)], check=True
    )
    with av.open(str(cut)) as c:
        assert any(p.is_discard for p in c.demux(c.streams.video[0]) if p.size)  # the case this is about
    with open_video(cut) as r:
        assert not r.info.truncated and r.frame_count > 0


def test_frames_that_share_a_timestamp_are_reported(tmp_path: Path, pattern: Callable[..., np.ndarray]) -> None:
    """Matroska keeps milliseconds: at 1200 frames/s several frames get one timestamp and cannot be addressed."""
    path = tmp_path / "fast.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=1200)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for i in range(36):
            for pkt in s.encode(av.VideoFrame.from_ndarray(pattern(i, 64, 48), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    with open_video(path) as r:
        assert r.info.shared_timestamps > 0 and r.frame_count + r.info.shared_timestamps == 36
        assert "share their timestamp" in r.info.summary()


# ------------------------------------------------------------------------------------------------ caches
def test_index_cache_is_reused(make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_video("cached_index.mp4", 40, "h264", gop=20)
    with open_video(path) as r:
        fp = r.info.fingerprint
        first_pts = r.index.pts.copy()
    cached = cache_dir() / "index" / f"{fp}.npz"
    assert cached.exists()
    mtime = cached.stat().st_mtime_ns

    def no_rebuild(self: VideoReader) -> None:
        raise AssertionError("the frame index was rebuilt although it is cached")

    monkeypatch.setattr(VideoReader, "_build_index", no_rebuild)
    with open_video(path) as r:
        assert np.array_equal(r.index.pts, first_pts)
        assert r.frame_count == 40
    assert cached.stat().st_mtime_ns == mtime


def test_corrupt_index_cache_is_rebuilt(make_video: Callable[..., Path]) -> None:
    path = make_video("corrupt_index.mp4", 30, "h264", gop=10)
    with open_video(path) as r:
        fp = r.info.fingerprint
    cached = cache_dir() / "index" / f"{fp}.npz"
    cached.write_bytes(b"not an npz file")
    with open_video(path) as r:
        assert r.frame_count == 30
    assert cached.read_bytes()[:2] == b"PK"  # rewritten as a valid archive


def test_lru_cache_respects_its_byte_bound(mjpeg_file: Path, reference_frames: RefFn) -> None:
    ref = reference_frames(mjpeg_file)
    frame_bytes = ref[0].nbytes
    with open_video(mjpeg_file, cache_bytes=3 * frame_bytes + 10) as r:
        for i in range(20):
            r.frame(i)
        held = [i for i in range(len(ref)) if r.cached(i) is not None]
        assert len(held) <= 3
        assert 19 in held and 0 not in held  # least recently used frames went first
        assert held == [17, 18, 19]
        r.frame(17)  # a hit makes 17 the most recently used ...
        r.frame(20)  # ... so storing 20 evicts 18, the least recently used
        assert [i for i in range(len(ref)) if r.cached(i) is not None] == [17, 19, 20]
        for i in np.random.default_rng(0).integers(0, len(ref), 30).tolist():
            assert np.array_equal(r.frame(i), ref[i])
            assert sum(r.cached(j) is not None for j in range(len(ref))) <= 3
    with open_video(mjpeg_file, cache_bytes=frame_bytes // 2) as r:  # smaller than one frame: no caching
        r.frame(5)
        assert r.cached(5) is None
