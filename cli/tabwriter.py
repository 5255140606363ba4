"""Go's text/tabwriter, the elastic-tabstop aligner behind kubectl's output.

Why not just pad every column to the widest cell of the whole output? Because
kubectl does not, and `describe` output depends on the difference. kubectl
writes tab-terminated cells and lets text/tabwriter align them; tabwriter
aligns a column only across a *block*: a run of consecutive lines that all
have a cell in that column. A line with fewer cells ends the block, and the
next block is sized on its own. Within a block, column j+1 is again split into
blocks among the lines that have it, recursively.

Worked example (padding 2). The lines

    "Name:\\tweb-app"
    "Namespace:\\tdefault"
    "Containers:"
    "  web:\\t"
    "    Image:\\tnginx"

are three blocks for column 0: the first two lines (widest cell "Namespace:",
10 + 2 = 12 wide), then "Containers:" alone has no tab so it breaks the block,
then "  web:" and "    Image:" (width 12 again, by coincidence). Result:

    Name:       web-app
    Namespace:  default
    Containers:
      web:
        Image:  nginx

The last cell of a line is never padded (it is not tab-terminated), so no
line carries trailing spaces. Widths count characters, like Go counts runes.

kubectl's two configurations are exported: `get` tables use minwidth 6 and
padding 3 (printers.GetNewTabWriter), `describe` uses minwidth 0, padding 2.
"""

from __future__ import annotations

from collections.abc import Iterable

GET_MIN_WIDTH = 6
GET_PADDING = 3
DESCRIBE_MIN_WIDTH = 0
DESCRIBE_PADDING = 2


def align(text_lines: Iterable[str], *, min_width: int = 0, padding: int = 2) -> list[str]:
    """Align tab-separated `text_lines` as Go's tabwriter.Writer would (flags 0, pad ' ')."""
    lines = [line.split("\t") for line in text_lines]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(start: int, end: int) -> None:
        for row in lines[start:end]:
            parts: list[str] = []
            for j, cell in enumerate(row):
                if j < len(widths) and j < len(row) - 1:
                    parts.append(cell.ljust(widths[j]))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # A cell exists in this column: flush the lines before the block,
            # then size the block to its widest cell.
            write_lines(line0, this)
            line0 = this
            width = min_width
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    return out


def render(text_lines: Iterable[str], *, min_width: int = 0, padding: int = 2) -> str:
    """`align` joined into one string with a trailing newline (empty input -> "")."""
    aligned = align(text_lines, min_width=min_width, padding=padding)
    return "".join(line + "\n" for line in aligned)
