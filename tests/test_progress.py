"""The progress display: a bar per backend on a terminal, quiet lines in a log."""

from __future__ import annotations

import io
import re

from harness.run.progress import BAR_WIDTH, LOG_INTERVAL, REDRAW_INTERVAL, ProgressDisplay


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: lines, honouring "cursor up N lines" and "clear line"."""
    lines: list[str] = []
    row = 0
    for part in re.split(r"(\x1b\[\d+F|\x1b\[2K|\n)", text):
        if not part or part == "\x1b[2K":
            continue
        if part == "\n":
            row += 1
        elif match := re.fullmatch(r"\x1b\[(\d+)F", part):
            row -= int(match.group(1))
        else:
            while len(lines) <= row:
                lines.append("")
            lines[row] = part
    return lines


def test_a_terminal_shows_one_bar_per_backend_redrawn_in_place():
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(["numpy", "tensorflow"], 4, out, terminal=True, clock=clock)
    display("numpy", 1, 4, "seed-1-1-1")
    clock.now += 1
    display("tensorflow", 2, 4, "mazur-2-2-2")
    clock.now += 1
    display("numpy", 4, 4, "last-case")
    shown = screen(out.getvalue())
    assert len(shown) == 2, shown  # two lines, rewritten, not appended
    numpy, tensorflow = shown
    assert numpy.split() == ["numpy", "[" + "#" * BAR_WIDTH + "]", "4/4", "last-case"]
    half = "#" * (BAR_WIDTH // 2) + "-" * (BAR_WIDTH // 2)
    assert tensorflow.split() == ["tensorflow", f"[{half}]", "2/4", "mazur-2-2-2"]


def test_terminal_redraws_are_throttled_but_a_finished_backend_always_shows():
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(["torch"], 1000, out, terminal=True, clock=clock)
    for done in range(1, 1000):
        clock.now += REDRAW_INTERVAL / 10
        display("torch", done, 1000, f"case-{done}")
    redraws = out.getvalue().count("\x1b[2K")
    assert redraws <= 1 + int(999 * (REDRAW_INTERVAL / 10) / REDRAW_INTERVAL) + 1
    display("torch", 1000, 1000, "case-1000")  # at once, however soon after the last redraw
    assert screen(out.getvalue())[0].split()[-2:] == ["1000/1000", "case-1000"]


def test_a_log_gets_one_line_per_finished_backend_and_rare_progress_lines():
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(["numpy", "jax"], 3, out, terminal=False, clock=clock)
    display("numpy", 1, 3, "a")
    display("jax", 1, 3, "a")
    clock.now += LOG_INTERVAL
    display("jax", 2, 3, "b")  # a long run: one line after the interval
    display("jax", 2, 3, "b")
    display("numpy", 3, 3, "c")
    display("numpy", 3, 3, "c")  # said once
    assert out.getvalue().splitlines() == ["  jax: 2/3 cases", "  numpy: 3 cases done"]
    assert "\x1b" not in out.getvalue()
