"""Small file helpers: atomic writes and content fingerprints."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TypeVar

_T = TypeVar("_T")

MIB = 1 << 20


NAME_BYTES = 255  # the longest file name most file systems allow


def fit_file_name(name: str, suffix: str = "", limit: int = NAME_BYTES) -> str:
    """``name + suffix``, or, where that is longer than ``limit`` bytes (a file name may have 255; a video
    name of 80 Japanese characters is 240 bytes), ``name`` cut and marked with a hash of the whole name, so
    it stays its own."""
    full = name + suffix
    raw = full.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return full
    tag = "~" + hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    room = limit - len((tag + suffix).encode("utf-8"))
    return name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore") + tag + suffix


def fingerprint(path: str | Path) -> str:
    """SHA-256 over the file size and its first, middle and last MiB (hex).

    Cheap for hour-long videos and changes whenever the content does in practice.
    """
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256()
    h.update(str(size).encode())
    with p.open("rb") as f:
        for offset in sorted({0, max(0, size // 2 - MIB // 2), max(0, size - MIB)}):
            f.seek(offset)
            h.update(f.read(MIB))
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a whole file (hex)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(4 * MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def current_umask() -> int:
    """The process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_prefix(target: Path) -> str:
    """``.<name>.``: the temporary name must fit where the target's does (255 bytes), so a long name is cut."""
    return "." + target.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore") + "."


def make_temp(target: Path, suffix: str = ".tmp") -> Path:
    """An empty temporary file beside ``target`` with normal permissions (for atomic renames)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())
    return Path(tmp)


def write_via_temp(path: str | Path, write: Callable[[str], object]) -> Path:
    """``write(tmp)`` a file beside ``path``, give it normal permissions, then rename it over ``path``.

    For writers that create the file themselves (safetensors' ``save_file`` makes it 0600 whatever the
    umask); on error the temporary file is removed and ``path`` is untouched."""
    target = Path(path)
    tmp = make_temp(target)
    try:
        write(str(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, fsync, then rename over it.

    Readers see either the old file or the complete new one, never a partial file; on error the
    temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        with contextlib.suppress(OSError):
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_dict_rows(path: str | Path, rows: list[dict], float_format: str | None = None) -> None:
    """Write ``rows`` (dicts) as a CSV atomically; columns are every key in order of first appearance.

    ``float_format`` (e.g. ``".4f"``) formats float values; others are written as ``str`` does.
    """
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with atomic_write(path) as f:
        w = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for r in rows:
            if float_format:
                r = {k: (format(v, float_format) if isinstance(v, float) else v) for k, v in r.items()}
            w.writerow(r)


def distinct_names(paths: Sequence[str | Path]) -> list[str]:
    """One output name per path: the file name without extension where no other path of ``paths`` has it,
    else prefixed with as many parent folder names as make it unique (``p01/trial1.mp4``,
    ``p02/trial1.mp4`` -> ``p01_trial1``, ``p02_trial1``; files of one folder that differ only in their
    extension keep it: ``trial_mp4``, ``trial_mkv``), so that outputs of a batch never overwrite each
    other. The same path always gets the same name."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    stems = [Path(p).stem for p in paths]
    # trial.mp4 and trial.mkv in one folder: no folder tells them apart, the extension does (trial_mkv)
    place = [(pa[:-1], st) for pa, st in zip(parts, stems)]
    files_at = {pl: {pa for pa, q in zip(parts, place) if q == pl} for pl in place}
    stems = [
        f"{st}_{Path(p).suffix.lstrip('.')}" if len(files_at[place[i]]) > 1 and Path(p).suffix else st
        for i, (p, st) in enumerate(zip(paths, stems))
    ]
    depth = [0] * len(paths)

    def name(i: int) -> str:
        d = depth[i]
        folders = list(parts[i][-1 - d : -1]) if d else []
        return "_".join([f.strip("/\\") for f in folders if f.strip("/\\")] + [stems[i]])

    while True:
        groups: dict[str, list[int]] = {}
        for i in range(len(paths)):
            groups.setdefault(name(i), []).append(i)
        grow = [
            i
            for g in groups.values()
            if len({parts[j] for j in g}) > 1  # different files under one name
            for i in g
            if depth[i] < len(parts[i]) - 1
        ]
        if not grow:
            return [name(i) for i in range(len(paths))]
        for i in grow:
            depth[i] += 1


def each_file_once(items: Sequence[_T], path_of: Callable[[_T], str | Path] = Path) -> list[_T]:
    """``items`` in their order without those whose file (``path_of(item)``, made absolute) came before."""
    seen: set[str] = set()
    out = []
    for it in items:
        key = os.path.abspath(path_of(it))
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out
