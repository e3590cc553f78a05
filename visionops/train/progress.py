"""A progress line for long loops: step, loss, images/s, elapsed and time
left. On a terminal it redraws one line; otherwise (logs, CI) it prints a
line every `every` steps."""

from __future__ import annotations

import sys
import time


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    def __init__(self, total: int, *, every: int = 20, stream=None, enabled: bool = True) -> None:
        self.total = total
        self.every = every
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.images = 0

    def update(self, step: int, images: int, fields: dict[str, float], fraction: float | None = None,
               elapsed: float | None = None) -> str:
        """Step `step` (1-based) done, `images` more seen. `fraction` of the
        run done (default step / total) sets the time left."""
        self.images += images
        spent = time.perf_counter() - self.start if elapsed is None else elapsed
        done = fraction if fraction is not None else step / max(self.total, 1)
        left = spent * (1 - done) / done if done > 0 else float("nan")
        rate = self.images / max(time.perf_counter() - self.start, 1e-9)
        parts = [f"step {step}/{self.total}" if self.total else f"step {step}"] + [f"{k} {v:.4f}" for k, v in fields.items()]
        parts += [f"{rate:.1f} img/s", f"{clock(spent)} elapsed", f"{clock(left)} left"]
        line = " | ".join(parts)
        if self.enabled:
            if self.tty:
                self.stream.write("\r" + line + "\x1b[K")
                self.stream.flush()
            elif step % self.every == 0 or step == self.total or step == 1:
                print(line, file=self.stream, flush=True)
        return line

    def message(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\n")
            print(text, file=self.stream, flush=True)
