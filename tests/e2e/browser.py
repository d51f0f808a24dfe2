"""The system Chromium the browser tests (and bench/dashboard_draw.py) drive: where it is,
how it is launched, and a probe of what a canvas has drawn."""

from __future__ import annotations

import os
import shutil

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Pixels of a canvas that are neither transparent nor near-white; -1 when it has no 2D context.
INKED_PIXELS = """(canvas) => {
  let ctx = null;
  try { ctx = canvas.getContext('2d'); } catch (e) { return -1; }
  if (!ctx || canvas.width === 0 || canvas.height === 0) return -1;
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) n++;
  }
  return n;
}"""


def chromium_path() -> str | None:
    """The system Chromium: ``MLBENCH_CHROMIUM`` when set (only that one), else ``chromium``
    on PATH, else Debian's path."""
    if override := os.environ.get("MLBENCH_CHROMIUM"):
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    for candidate in (
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
