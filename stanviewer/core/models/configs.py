"""JSON round trips of the architecture config dataclasses (stored in checkpoint and detector metadata)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

__all__ = ["config_kwargs", "config_to_dict"]


def config_to_dict(cfg: Any, tuples: tuple[str, ...]) -> dict:
    """``asdict(cfg)`` with the tuple fields named in ``tuples`` as lists (what JSON gives back)."""
    d = asdict(cfg)
    for k in tuples:
        d[k] = list(getattr(cfg, k))
    return d


def config_kwargs(cls: type, d: dict, tuples: tuple[str, ...]) -> dict:
    """The entries of ``d`` that are fields of dataclass ``cls`` (unknown keys of newer or older files are
    dropped), the fields named in ``tuples`` as tuples of ints."""
    known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
    for k in tuples:
        if k in known:
            known[k] = tuple(int(x) for x in known[k])
    return known
