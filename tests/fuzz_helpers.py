"""Seeded fuzzing of file loaders: random bytes, truncated and byte-overwritten copies of a valid file.

The project rule: bad input gets a clear message (a :class:`~stanviewer.core.errors.StanError` naming the
file), never a traceback and never a hang. :func:`fuzz_loader` feeds a loader every blob and collects
what leaks, so one failing run shows every leaking exception type at once (not only the first).
Imported by the ``test_fuzz_*`` tests (``tests/`` is on the path).
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stanviewer.core.errors import StanError

#: seconds one load may take before it counts as a hang (loads take milliseconds; generous, so that a slow
#: or loaded CI machine does not turn a slow case into a failure)
CASE_LIMIT_S = 10.0


#: what the third kind of damage writes: text characters, so that text files stay text and get to the parser
TEXT_BYTES = bytes(range(32, 127)) + b"\n\t"


def damaged(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    """``n`` damaged copies of ``data``, in turn: truncated, 1-8 random bytes overwritten, 1-8 bytes
    overwritten with text characters (:data:`TEXT_BYTES`, so that UTF-8 files stay decodable)."""
    out = []
    for i in range(n):
        b = bytearray(data)
        if i % 3 == 0:
            b = b[: rng.randrange(0, len(b))]
        else:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.getrandbits(8) if i % 3 == 1 else rng.choice(TEXT_BYTES)
        out.append(bytes(b))
    return out


def blobs(valid: bytes, rng: random.Random, n_random: int = 50, n_damaged: int = 250) -> list[bytes]:
    """Random byte strings (0 to 2 KiB, some starting with ``valid``'s first bytes) and damaged copies."""
    out = []
    for k in range(n_random):
        blob = rng.randbytes(rng.choice([0, 1, 7, 64, 2048]))
        out.append(valid[:16] + blob if k % 4 == 3 else blob)
    return out + damaged(valid, rng, n_damaged)


class Hang(Exception):
    """A single load ran longer than :data:`CASE_LIMIT_S`."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds`` (POSIX); elsewhere just measure."""
    use_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if use_alarm:

        def _raise(signum: int, frame: object) -> None:
            raise Hang(f"took over {seconds} s")

        old = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    if time.perf_counter() - t0 > seconds:
        raise Hang(f"took {time.perf_counter() - t0:.1f} s")


def fuzz_loader(
    load: Callable[[Path], object],
    path: Path,
    cases: list[bytes],
    *,
    expected: type[StanError] = StanError,
    names: Path | None = None,
    accept: Callable[[object], None] | None = None,
) -> tuple[Counter[str], list[str]]:
    """Write every case to ``path``, call ``load(path)`` and collect what leaks.

    Returns (leaks by exception type, one example per type). An ``expected`` error must name ``names``
    (default ``path``); a load that succeeds is passed to ``accept`` (which may raise AssertionError to
    reject a damaged file that was taken for a good one).
    """
    leaks: Counter[str] = Counter()
    examples: dict[str, str] = {}
    where = str(names if names is not None else path)
    for k, blob in enumerate(cases):
        path.write_bytes(blob)
        try:
            with _time_limit(CASE_LIMIT_S):
                result = load(path)
            if accept is not None:
                accept(result)
        except expected as e:
            if where in str(e):
                continue
            kind, text = f"{type(e).__name__} not naming the file", str(e)
        except Exception as e:  # AssertionError from ``accept`` too
            kind, text = type(e).__name__, str(e)
        else:
            continue
        leaks[kind] += 1
        examples.setdefault(kind, f"case {k} ({len(blob)} bytes, starts {blob[:24]!r}): {kind}: {text[:200]}")
    return leaks, list(examples.values())


def assert_no_leaks(result: tuple[Counter[str], list[str]]) -> None:
    """Fail with a summary of every leaking exception type (counts and one example each)."""
    leaks, examples = result
    assert not leaks, f"{sum(leaks.values())} cases leaked {dict(leaks)}:\n" + "\n".join(examples)


#: what :func:`json_mutants` puts in place of a value
ODD_VALUES: list[object] = [None, True, 0, -1, 10**12, 1.5, -0.0, "", "x", "nan", [], [1], {}, {"a": 1}]


def json_mutants(valid: bytes, rng: random.Random, n: int) -> list[bytes]:
    """``n`` copies of a valid JSON document with one value (anywhere in the tree) replaced by a value of
    another type (:data:`ODD_VALUES`) or deleted: well-formed JSON that a loader must still check."""
    import copy
    import json

    doc = json.loads(valid)
    out = []
    for _ in range(n):
        d = copy.deepcopy(doc)
        slots = _slots(d)
        if not slots:
            out.append(json.dumps(rng.choice(ODD_VALUES)).encode())
            continue
        parent, key = rng.choice(slots)
        if isinstance(parent, dict) and rng.random() < 0.25:
            del parent[key]
        else:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        out.append(json.dumps(d, ensure_ascii=False).encode())
    return out


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every value in a JSON tree."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    out = []
    for k, v in list(items):
        out.append((node, k))
        out += _slots(v)
    return out
