"""Helpers shared by the benchmark scripts: isolated runs, timing, peak memory, tables.

Each measured unit of work runs in a fresh child process (``spawn``), so its
peak memory is its own and not hidden by memory the allocator kept from an
earlier model. Inside the child, the kernel's peak-RSS counter (``VmHWM``) is
reset through ``/proc/self/clear_refs`` after the data is loaded; the reported
peak is ``VmHWM - RSS at the reset``: the extra memory the work needed at its
worst moment, sampled by the kernel (no polling thread that could miss a spike).
Where the reset is unsupported, ``ru_maxrss`` of the fresh child is used.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

MiB = 2**20

__all__ = [
    "MiB",
    "PeakMemory",
    "markdown_table",
    "process_rss_bytes",
    "rss_bytes",
    "run_isolated",
    "set_threads",
    "timed",
]


def rss_bytes() -> int:
    """Current resident set size of this process, in bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


class PeakMemory:
    """Peak RSS above the level at construction (or the last :meth:`reset`)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
            self.resettable = True
        except OSError:
            self.resettable = False
        self.base = rss_bytes()

    def peak_bytes(self) -> int:
        """Extra bytes at the peak since the reset (never negative)."""
        peak = None
        if self.resettable:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
        if peak is None:
            scale = 1 if sys.platform == "darwin" else 1024
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        return max(0, peak - self.base)


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Measure wall and CPU seconds of the ``with`` body into the yielded dict."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["wall"] = time.perf_counter() - wall
        out["cpu"] = time.process_time() - cpu


def set_threads(n: int, blas: int | None = None) -> None:
    """Use ``n`` torch threads and ``blas`` (default ``n``) BLAS/OpenMP threads in this process."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n if blas is None else blas)


def _child(conn: Any, fn: Callable[..., dict], args: tuple) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # report any failure (MemoryError included) to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def process_rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def run_isolated(
    fn: Callable[..., dict],
    *args: Any,
    timeout: float | None = None,
    max_rss_bytes: int | None = None,
) -> dict:
    """Run ``fn(*args)`` in a fresh ``spawn`` child process and return its dict.

    ``fn`` must be importable (a module-level function). A crash (segfault,
    OOM kill) or exception in the child is returned as ``{"error": message}``
    instead of taking the benchmark down. With ``max_rss_bytes`` the parent
    polls the child's resident memory (every 0.2 s) and kills it above the
    limit, so a model too big for a shared machine fails alone instead of
    pushing the machine into swap or the OOM killer.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args))
    proc.start()
    child.close()
    result: dict = {"error": "no result"}
    deadline = None if timeout is None else time.monotonic() + timeout
    peak = 0
    try:
        while True:
            if parent.poll(0.2):
                status, payload = parent.recv()
                result = payload if status == "ok" else {"error": payload}
                break
            peak = max(peak, process_rss_bytes(proc.pid))
            if max_rss_bytes is not None and peak > max_rss_bytes:
                result = {
                    "error": f"killed: resident memory passed {max_rss_bytes / 2**30:.1f} GiB"
                }
                break
            if deadline is not None and time.monotonic() > deadline:
                result = {"error": f"timed out after {timeout} s"}
                break
            if not proc.is_alive():
                break
    except EOFError:
        pass
    proc.join(5 if "error" not in result else 0.1)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if result.get("error") == "no result":
        result = {"error": f"child process died (exit code {proc.exitcode})"}
    return result


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Format ``rows`` as a Markdown table.

    ``columns`` holds ``(key, header, format)``; a missing value prints ``-``.
    """
    header = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" if f == "s" else "---:" for _, _, f in columns) + "|"
    lines = [header, rule]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("-" if value is None else format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
