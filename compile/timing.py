"""Progress lines on stderr and per-stage wall-clock timings for the metadata."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class StageTimer:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.timings: dict[str, float] = {}
        self._stream = stream

    def note(self, message: str) -> None:
        print(f"[compile] {message}", file=self._stream, flush=True)

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        self.note(f"{name}: {what} ...")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)
        self.note(f"{name}: done in {self.timings[name]:.2f} s")
