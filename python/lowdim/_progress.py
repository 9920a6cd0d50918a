"""The ``progress=`` argument of long-running functions, and a tiny terminal progress bar.

``progress`` is ``False`` (default: no reports), ``True`` (a bar on stderr when stderr is a
terminal, nothing otherwise) or a callable ``progress(done, total)``. The Rust kernels call it
between their steps (power iterations, adaptive blocks, Tucker modes, HOOI sweeps), at most a
few hundred times per run, from one of lowdim's worker threads; an exception it raises
(``KeyboardInterrupt`` included) stops the kernel and is re-raised by the call that started it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressCallback = Callable[[int, int], object]


class ProgressBar:
    """``label [#########-----------]  45%  1.2 s`` on one terminal line, redrawn in place.

    Redraws at most every ``min_interval`` seconds (and always at 100%); ``close()`` ends the
    line. Writes nothing until the first report, so very short runs stay quiet when
    ``delay`` seconds have not passed yet.

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> bar = ProgressBar("rsvd", stream=buf, width=10, delay=0, min_interval=0)
    >>> bar(5, 10)
    >>> bar(10, 10)
    >>> bar.close()
    >>> print(buf.getvalue().split("\\r")[-1].split("  ")[0])
    rsvd [##########] 100%
    """

    def __init__(
        self,
        label: str = "",
        *,
        stream=None,
        width: int = 30,
        delay: float = 0.2,
        min_interval: float = 0.1,
    ):
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.delay = delay
        self.min_interval = min_interval
        self.t0 = time.perf_counter()
        self._last = -float("inf")
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        final = total > 0 and done >= total
        if now - self.t0 < self.delay and not (final and self._drawn):
            return
        if not final and now - self._last < self.min_interval:
            return
        self._last = now
        frac = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        n = int(round(frac * self.width))
        bar = "#" * n + "-" * (self.width - n)
        label = f"{self.label} " if self.label else ""
        self.stream.write(f"\r{label}[{bar}] {frac * 100:3.0f}%  {now - self.t0:.1f} s")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line (only if something was drawn)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def resolve(progress, label: str = "") -> tuple[ProgressCallback | None, ProgressBar | None]:
    """``progress=`` -> (callback for the kernel or None, the bar to close afterwards)."""
    if progress is None or progress is False:
        return None, None
    if progress is True:
        stream = sys.stderr
        try:
            tty = stream is not None and stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        if not tty:
            return None, None
        bar = ProgressBar(label, stream=stream)
        return bar, bar
    if callable(progress):
        return progress, None
    raise TypeError(
        f"progress must be a bool or a callable progress(done, total), got {progress!r}"
    )
