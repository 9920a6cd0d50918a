"""A host-transfer trap for the array-API path: every conversion of an ``array_api_strict``
array to the host is recorded with its size and the lowdim line that asked for it.

``array_api_strict`` arrays stand in for device (CuPy) arrays. Within ``with HostTrap() as
trap:``, these are recorded (``trap.events``, one :class:`Event` each):

* ``"d2h"``: an array leaving the namespace (``__array__`` / ``__buffer__`` / ``__dlpack__``
  / ``__iter__`` / ``to_device``: ``np.asarray``, ``lowdim._xp.to_host``, scipy);
* ``"scalar"``: a 0-d array read on the host (``float``, ``int``, ``bool``, ``operator.index``,
  ``complex``): one host synchronization each on a GPU;
* ``"shape"``: an operation whose output shape depends on the data (``nonzero``, boolean
  indexing, ``unique_*``): CuPy waits for the device to know the size (one sync each), while
  ``array_api_strict`` knows it for free;
* ``"h2d"``: a host (NumPy) array of ``min_h2d`` entries or more passed to ``asarray``.

Only calls whose caller is outside ``array_api_strict`` itself are recorded (its own
operations use these methods internally). ``trap.data_sized(limit)`` lists the transfers of
more than ``limit`` entries.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from dataclasses import dataclass, field

import numpy as np

xs = __import__("array_api_strict")

_ARRAY = type(xs.asarray(0.0))
_STRICT_DIR = os.path.dirname(xs.__file__)
_LOWDIM_MARK = os.sep + "lowdim" + os.sep


@dataclass
class Event:
    kind: str  # "d2h", "scalar", "shape", "h2d"
    how: str  # the method or function
    size: int
    shape: tuple
    where: str  # innermost lowdim frame, "file:line (function)"
    stack: list = field(repr=False, default_factory=list)  # lowdim frames, innermost last


def _lowdim_frames():
    frames = []
    for fs in traceback.extract_stack()[:-3]:
        if _LOWDIM_MARK in fs.filename and "site-packages" not in fs.filename:
            frames.append(f"{os.path.basename(fs.filename)}:{fs.lineno} ({fs.name})")
    return frames


def _from_strict():
    """Whether the caller of the patched method is array_api_strict itself."""
    f = sys._getframe(2)
    return f.f_code.co_filename.startswith(_STRICT_DIR)


class HostTrap:
    def __init__(self, min_h2d: int = 1):
        self.events: list[Event] = []
        self.min_h2d = min_h2d
        self._saved = []

    # ------------------------------------------------------------------ recording
    def _record(self, kind, how, a):
        shape = tuple(getattr(a, "shape", ()) or ())
        size = math.prod(shape) if shape else 1
        frames = _lowdim_frames()
        self.events.append(Event(kind, how, size, shape, frames[-1] if frames else "?", frames))

    def _wrap_method(self, name, kind):
        orig = getattr(_ARRAY, name)
        trap = self

        def wrapper(self_, *a, **kw):
            if not _from_strict():
                trap._record(kind, name, self_)
            return orig(self_, *a, **kw)

        wrapper.__name__ = name
        self._saved.append((_ARRAY, name, orig))
        setattr(_ARRAY, name, wrapper)

    def _wrap_getitem(self):
        orig = _ARRAY.__getitem__
        trap = self

        def getitem(self_, key):
            keys = key if isinstance(key, tuple) else (key,)
            if not _from_strict() and any(
                isinstance(k, _ARRAY) and k.dtype == xs.bool for k in keys
            ):
                trap._record("shape", "bool-index", self_)
            return orig(self_, key)

        self._saved.append((_ARRAY, "__getitem__", orig))
        _ARRAY.__getitem__ = getitem

    def _wrap_function(self, name, kind):
        orig = getattr(xs, name)
        trap = self

        def fn(*a, **kw):
            if not _from_strict():
                trap._record(kind, name, a[0] if a else None)
            return orig(*a, **kw)

        self._saved.append((xs, name, orig))
        setattr(xs, name, fn)

    def _wrap_asarray(self):
        orig = xs.asarray
        trap = self

        def asarray(obj, *a, **kw):
            if isinstance(obj, np.ndarray) and obj.size >= trap.min_h2d and not _from_strict():
                trap._record("h2d", "asarray", obj)
            return orig(obj, *a, **kw)

        self._saved.append((xs, "asarray", orig))
        xs.asarray = asarray

    # ------------------------------------------------------------------ context manager
    def __enter__(self):
        for name in ("__array__", "__buffer__", "__dlpack__", "__iter__", "to_device"):
            if hasattr(_ARRAY, name):
                self._wrap_method(name, "d2h")
        for name in ("__float__", "__int__", "__bool__", "__index__", "__complex__"):
            self._wrap_method(name, "scalar")
        self._wrap_getitem()
        for name in ("nonzero", "unique_all", "unique_counts", "unique_inverse", "unique_values"):
            self._wrap_function(name, "shape")
        self._wrap_asarray()
        return self

    def __exit__(self, *exc):
        for owner, name, orig in reversed(self._saved):
            setattr(owner, name, orig)
        self._saved.clear()
        return False

    # ------------------------------------------------------------------ queries
    def of(self, kind):
        return [e for e in self.events if e.kind == kind]

    def data_sized(self, limit: int):
        """The transfers (device -> host or host -> device) of more than ``limit`` entries."""
        return [e for e in self.events if e.kind in ("d2h", "h2d") and e.size > limit]

    def syncs(self) -> int:
        """Device -> host synchronizations: scalars, data-dependent shapes, transfers."""
        return sum(e.kind in ("scalar", "shape", "d2h") for e in self.events)

    def summary(self):
        """``{(kind, how, where, shape): count}``."""
        out: dict = {}
        for e in self.events:
            key = (e.kind, e.how, e.where, e.shape)
            out[key] = out.get(key, 0) + 1
        return out
