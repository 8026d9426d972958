"""Renders a terminal capture (ANSI text from `tmux capture-pane -p -e`) to an SVG picture for the README.

Usage: python3 assets/render_capture.py assets/live-view.ansi assets/live-view.svg "ftx serve -w 3"
Every character is placed on its terminal column, so the picture shows exactly what the terminal showed.
Standard library only; used to make pictures, never by ftx or its tests.
"""
import html
import re
import sys
import unicodedata

CELL_W, CELL_H, PAD, TOP = 8.4, 19, 14, 34
BG, FG = "#1e1e2e", "#cdd6f4"
COLOURS = {30: "#45475a", 31: "#f38ba8", 32: "#a6e3a1", 33: "#f9e2af", 34: "#89b4fa", 35: "#f5c2e7", 36: "#94e2d5", 37: "#bac2de"}
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def cells(line):
    """Yields (column, char, colour, bold) for one line of ANSI text."""
    colour, bold, col, pos = FG, False, 0, 0
    for match in list(SGR.finditer(line)) + [None]:
        end = match.start() if match else len(line)
        for ch in line[pos:end]:
            yield col, ch, colour, bold
            col += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if match is None:
            break
        pos = match.end()
        for code in [int(c) for c in match.group(1).split(";") if c] or [0]:
            if code == 0:
                colour, bold = FG, False
            elif code == 1:
                bold = True
            elif code == 39:
                colour = FG
            elif code in COLOURS:
                colour = COLOURS[code]


def main():
    source, target, title = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(source, encoding="utf-8") as f:
        lines = f.read().rstrip("\n").split("\n")
    rows = [list(cells(line)) for line in lines]
    cols = max((c[-1][0] + 1 for c in rows if c), default=1)
    width, height = cols * CELL_W + 2 * PAD, TOP + len(rows) * CELL_H + PAD
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">',
        f'<rect width="100%" height="100%" rx="8" fill="{BG}"/>',
        '<circle cx="20" cy="16" r="6" fill="#f38ba8"/><circle cx="40" cy="16" r="6" fill="#f9e2af"/><circle cx="60" cy="16" r="6" fill="#a6e3a1"/>',
        f'<text x="{width / 2:.0f}" y="21" fill="#9399b2" font-family="sans-serif" font-size="13" text-anchor="middle">{html.escape(title)}</text>',
        '<g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="14">',
    ]
    for r, row in enumerate(rows):
        y = TOP + (r + 1) * CELL_H - 5
        for col, ch, colour, bold in row:
            if ch == " ":
                continue
            x = PAD + col * CELL_W
            weight = ' font-weight="bold"' if bold else ""
            if ch in "█▉▊▋▌▍▎▏":
                frac = 1 - "█▉▊▋▌▍▎▏".index(ch) / 8
                out.append(f'<rect x="{x:.1f}" y="{y - 13}" width="{CELL_W * frac + 0.3:.1f}" height="16" fill="{colour}"/>')
            else:
                out.append(f'<text x="{x:.1f}" y="{y}" fill="{colour}"{weight}>{html.escape(ch)}</text>')
    out += ["</g>", "</svg>"]
    with open(target, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
