"""Charts for the admin model card, rendered on the server as inline SVG strings.

Why SVG built in plain Python rather than a JavaScript charting library: the service runs
air-gapped, so there is no CDN to load from and no JS bundle to vendor, audit and keep up
to date; a chart is plain XML, so tests parse it and assert on what was drawn; and inline
SVG scales with the page and prints as sharply as the text around it.

This module never imports Django. Callers embed the result with `mark_safe`, which is only
sound because every text that comes from data (titles, labels, series names, colours) goes
through `_esc` here. Every root `<svg>` carries `data-points`, the number of elements with
class `leadml-mark` (bars, lines, dots, cells), so browser tests can tell a chart with data
from an empty one.

Past the ~400 lines of the README's module rule on purpose: every chart is a short
function over the same scale, axis and escaping helpers, which a split would scatter.
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

BLUE, GREEN, RED, PURPLE, AMBER = "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#f59e0b"
GREY, GRID, INK, WHITE = "#6b7280", "#e5e7eb", "#111827", "#ffffff"
SERIES_COLORS = (BLUE, AMBER, GREEN, PURPLE, RED)
FONT = "system-ui, -apple-system, sans-serif"
WIDTH = 640
TITLE_SPACE = 34
PLOT_HEIGHT = 240
BAR_ROW = 22
# Average glyph width at 11px: layout only needs an estimate, the browser does the rest.
CHAR_WIDTH = 6.2
# Above this many points a line gets no per-point markers: a 500-threshold ROC curve would
# turn into a smear of dots.
MAX_MARKERS = 80
EPOCH = datetime(1970, 1, 1)
DATE_STEPS = (1, 2, 7, 14, 28, 91, 182, 364)

Scale = Callable[[float], float]


@dataclass(frozen=True)
class Series:
    """One line of a line chart; a None y breaks the line."""

    name: str
    points: Sequence[tuple[float | str, float | None]]
    color: str | None = None
    dashed: bool = False
    markers: bool = True


@dataclass(frozen=True)
class _Box:
    """The plot area inside the chart, in SVG user units."""

    left: float
    top: float
    right: float
    bottom: float


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return round ticks (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range must be finite, got {low!r}..{high!r}")
    low, high = min(low, high), max(low, high)
    if low == high:
        padding = abs(low) * 0.1
        low, high = (0.0, 1.0) if low == 0 else (low - padding, high + padding)
    raw_step = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step * (1 - 1e-9))
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    # Rounding strips float noise (0.6000000000000001) so labels and comparisons see round numbers.
    decimals = max(0, 1 - math.floor(math.log10(step)))
    return [round(index * step, decimals) + 0.0 for index in range(first, last + 1)]


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    value_label: str = "",
    highlight: Callable[[str, float], bool] | None = None,
    signed: bool = False,
    max_items: int = 20,
) -> str:
    """Draw horizontal bars; beyond max_items keep the largest |value|, in the given order."""
    rows = [(str(label), float(value)) for label, value in items if _finite(value)]
    if not rows:
        return _empty("bar", title)
    limit = max(max_items, 1)
    hidden = max(0, len(rows) - limit)
    if hidden:
        largest = sorted(range(len(rows)), key=lambda index: -abs(rows[index][1]))[:limit]
        rows = [rows[index] for index in sorted(largest)]
    values = [value for _, value in rows]
    ticks = nice_ticks(min(0.0, *values), max(0.0, *values), 4)
    label_right = 12 + min(200.0, max(60.0, max(len(_clip(label, 30)) for label, _ in rows) * CHAR_WIDTH))
    # A negative bar ends on the left, so its value text needs room between labels and plot.
    gap = 48 if ticks[0] < 0 else 8
    box = _Box(label_right + gap, TITLE_SPACE, WIDTH - 56, TITLE_SPACE + BAR_ROW * len(rows))
    x_of = _scale(ticks[0], ticks[-1], box.left, box.right)
    zero = x_of(0.0)
    body = _x_axis(box, ticks, x_of, value_label)
    for index, (label, value) in enumerate(rows):
        top = box.top + index * BAR_ROW
        end = x_of(value)
        colour = RED if highlight and highlight(label, value) else AMBER if signed and value < 0 else BLUE
        # The full name in a tooltip, since long names are clipped.
        shown_label = _text(label_right, top + 15, _clip(label, 30), anchor="end", fill=INK)
        body.append(f"<g><title>{_esc(label)}</title>{shown_label}</g>")
        tooltip = f"{label}: {_full(value)} {value_label}".rstrip()
        body.append(_rect(min(zero, end), top + 4, abs(end - zero), BAR_ROW - 8, colour, tooltip))
        anchor, text_x = ("start", end + 4) if value >= 0 else ("end", end - 4)
        body.append(_text(text_x, top + 15, _short(value, signed=signed), anchor=anchor))
    body.append(_line(zero, box.top, zero, box.bottom, GREY, css="leadml-zero"))
    height = box.bottom + (46 if value_label else 30)
    if hidden:
        body.append(_text(8, height + 4, f"{hidden} more not shown"))
        height += 14
    return _svg("bar", title, height, body, len(rows))


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_is_date: bool = False,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    hlines: Sequence[tuple[float, str]] = (),
) -> str:
    """Draw one polyline per unbroken run of each series, its points placed in x order."""
    drawn = []
    for index, one in enumerate(series):
        segments = _line_segments(one, x_is_date)
        if segments:
            drawn.append((one, one.color or SERIES_COLORS[index % len(SERIES_COLORS)], segments))
    if not drawn:
        return _empty("line", title)
    xs = [point[0] for _, _, segments in drawn for segment in segments for point in segment]
    ys = [point[1] for _, _, segments in drawn for segment in segments for point in segment]
    ys += [float(value) for value, _ in hlines if _finite(value)]
    x_low, x_high, x_ticks = _line_x_range(xs, ys, x_is_date=x_is_date, diagonal=diagonal)
    if y_range and y_range[1] > y_range[0]:
        y_low, y_high = float(y_range[0]), float(y_range[1])
        y_ticks = [tick for tick in nice_ticks(y_low, y_high, 5) if y_low - 1e-9 <= tick <= y_high + 1e-9]
    else:
        y_ticks = x_ticks if diagonal and not x_is_date else nice_ticks(min(ys), max(ys), 5)
        y_low, y_high = y_ticks[0], y_ticks[-1]
    legend, legend_height = _legend([(one.name, colour, one.dashed) for one, colour, _ in drawn])
    box = _plot_box(y_ticks, TITLE_SPACE + legend_height)
    x_of = _scale(x_low, x_high, box.left, box.right)
    y_of = _scale(y_low, y_high, box.bottom, box.top)
    span = x_high - x_low
    x_format = (lambda days: _date_label(days, span)) if x_is_date else _tick
    body = [*legend, *_x_axis(box, x_ticks, x_of, x_label, x_format), *_y_axis(box, y_ticks, y_of, y_label)]
    if diagonal and max(x_low, y_low) < min(x_high, y_high):
        start, stop = max(x_low, y_low), min(x_high, y_high)
        body.append(_line(x_of(start), y_of(start), x_of(stop), y_of(stop), GREY, dashed=True, css="leadml-ref"))
    for value, label in hlines:
        if _finite(value) and y_low <= value <= y_high:
            body.append(_line(box.left, y_of(value), box.right, y_of(value), GREY, dashed=True, css="leadml-ref"))
            body.append(_text(box.right - 4, y_of(value) - 4, label, anchor="end", halo=True))
    marks = 0
    for one, colour, segments in drawn:
        marks += _line_series_draw(
            body, one, colour, segments, x_of=x_of, y_of=y_of, y_bounds=(y_low, y_high), x_is_date=x_is_date
        )
    return _svg("line", title, box.bottom + 44, body, marks)


# A line chart's point: x on the axis (days for dates), y, and x as given (for the tooltip).
_LinePoint = tuple[float, float, object]


def _line_segments(one: Series, x_is_date: bool) -> list[list[_LinePoint]]:
    """A series' unbroken runs in x order: a missing or non-finite y breaks the line
    rather than dropping to zero, and points without a usable x are left out."""
    # Sort on x alone (stable): ties keep their order, as in the vertical steps of a ROC curve.
    placed = [(_x_value(x, x_is_date), y, x) for x, y in one.points if x is not None]
    placed = sorted((point for point in placed if math.isfinite(point[0])), key=lambda point: point[0])
    segments: list[list[_LinePoint]] = [[]]
    for x, y, raw_x in placed:
        if _finite(y):
            segments[-1].append((x, float(y), raw_x))
        elif segments[-1]:
            segments.append([])
    return [segment for segment in segments if segment]


def _line_x_range(
    xs: list[float], ys: list[float], *, x_is_date: bool, diagonal: bool
) -> tuple[float, float, list[float]]:
    """The x axis' low and high ends and its ticks: dates padded by a day when all fall on
    one; numbers on nice ticks, shared with y when a y = x line is drawn."""
    if x_is_date:
        x_low, x_high = (min(xs), max(xs)) if min(xs) < max(xs) else (min(xs) - 1, max(xs) + 1)
        return x_low, x_high, _date_ticks(x_low, x_high)
    # With a y = x line both axes share one scale, so the diagonal sits at 45 degrees.
    x_ticks = nice_ticks(min(xs + ys), max(xs + ys), 5) if diagonal else nice_ticks(min(xs), max(xs), 6)
    return x_ticks[0], x_ticks[-1], x_ticks


def _line_series_draw(
    body: list[str],
    one: Series,
    colour: str,
    segments: list[list[_LinePoint]],
    *,
    x_of: Scale,
    y_of: Scale,
    y_bounds: tuple[float, float],
    x_is_date: bool,
) -> int:
    """Append a series' polylines (y clamped into the plot) and, unless there are too many
    points to tell apart, a marker per point; return the polylines drawn (the chart's marks)."""
    y_low, y_high = y_bounds
    dash = ' stroke-dasharray="6 4"' if one.dashed else ""
    for segment in segments:
        coordinates = " ".join(f"{_num(x_of(x))},{_num(y_of(_clamp(y, y_low, y_high)))}" for x, y, _ in segment)
        body.append(
            f'<polyline class="leadml-mark" points="{coordinates}" fill="none" stroke="{_esc(colour)}" '
            f'stroke-width="2" stroke-linejoin="round"{dash}><title>{_esc(one.name)}</title></polyline>'
        )
    points = [point for segment in segments for point in segment]
    if one.markers and len(points) <= MAX_MARKERS:
        for x, y, raw_x in points:
            tooltip = f"{one.name}: {raw_x if x_is_date else _full(x)} → {_full(y)}"
            body.append(_circle(x_of(x), y_of(_clamp(y, y_low, y_high)), colour, tooltip, css="leadml-marker"))
    return len(segments)


def scatter_chart(
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    hline: float | None = None,
    max_points: int = 500,
) -> str:
    """Draw dots; beyond max_points keep an evenly spaced, order-preserving sample."""
    clean = [(float(x), float(y)) for x, y in points if _finite(x) and _finite(y)]
    if not clean:
        return _empty("scatter", title)
    limit = max(max_points, 1)
    if len(clean) > limit:
        clean = [clean[index * len(clean) // limit] for index in range(limit)]
    xs = [x for x, _ in clean]
    ys = [y for _, y in clean] + ([float(hline)] if _finite(hline) else [])
    if diagonal:
        # A shared scale keeps y = x at 45 degrees, which is what the eye compares against.
        x_ticks = y_ticks = nice_ticks(min(xs + ys), max(xs + ys), 5)
    else:
        x_ticks, y_ticks = nice_ticks(min(xs), max(xs), 6), nice_ticks(min(ys), max(ys), 5)
    box = _plot_box(y_ticks, TITLE_SPACE)
    x_of = _scale(x_ticks[0], x_ticks[-1], box.left, box.right)
    y_of = _scale(y_ticks[0], y_ticks[-1], box.bottom, box.top)
    body = [*_x_axis(box, x_ticks, x_of, x_label), *_y_axis(box, y_ticks, y_of, y_label)]
    if diagonal:
        low, high = x_ticks[0], x_ticks[-1]
        body.append(_line(x_of(low), y_of(low), x_of(high), y_of(high), GREY, dashed=True, css="leadml-ref"))
    if _finite(hline):
        y = y_of(float(hline))  # type: ignore[arg-type]
        body.append(_line(box.left, y, box.right, y, GREY, dashed=True, css="leadml-ref"))
    for x, y in clean:
        body.append(_circle(x_of(x), y_of(y), BLUE, f"{x_label} {_full(x)}, {y_label} {_full(y)}"))
    return _svg("scatter", title, box.bottom + 44, body, len(clean))


def histogram_chart(
    bins: Sequence[tuple[float, float, int]],
    *,
    title: str,
    x_label: str,
    thresholds: Sequence[tuple[float, str]] = (),
) -> str:
    """Draw one bar per (low, high, count) bin, with labelled vertical threshold lines."""
    clean = [
        (float(min(low, high)), float(max(low, high)), int(count))
        for low, high, count in bins
        if _finite(low) and _finite(high) and _finite(count)
    ]
    if not clean:
        return _empty("histogram", title)
    cuts = [(float(value), label) for value, label in thresholds if _finite(value)]
    edges = [edge for low, high, _ in clean for edge in (low, high)] + [value for value, _ in cuts]
    x_ticks = nice_ticks(min(edges), max(edges), 6)
    count_ticks = nice_ticks(0.0, float(max(count for _, _, count in clean)), 4)
    box = _plot_box(count_ticks, TITLE_SPACE)
    x_of = _scale(x_ticks[0], x_ticks[-1], box.left, box.right)
    y_of = _scale(0.0, count_ticks[-1], box.bottom, box.top)
    # Counts are whole numbers, so a tick at 0.5 rows would only confuse.
    whole = [tick for tick in count_ticks if tick == int(tick)]
    body = [*_x_axis(box, x_ticks, x_of, x_label), *_y_axis(box, whole, y_of, "Count")]
    for low, high, count in clean:
        left, right = x_of(low), x_of(high)
        tooltip = f"{_full(low)} – {_full(high)}: {count}"
        body.append(_rect(left + 0.5, y_of(count), max(right - left - 1, 0.5), y_of(0) - y_of(count), BLUE, tooltip))
    for value, label in cuts:
        body.append(_line(x_of(value), box.top, x_of(value), box.bottom, PURPLE, dashed=True, css="leadml-ref"))
        body.append(_text(x_of(value) + 3, box.top + 10, label, fill=PURPLE, halo=True))
    return _svg("histogram", title, box.bottom + 44, body, len(clean))


def stacked_bar_chart(
    categories: Sequence[str],
    stacks: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    y_label: str,
) -> str:
    """Draw one vertical bar per category, stacking the positive values of each series."""
    for name, values, _ in stacks:
        if len(values) != len(categories):
            raise ValueError(f"stack {name!r} has {len(values)} values for {len(categories)} categories")
    totals = [
        sum(float(values[index]) for _, values, _ in stacks if _finite(values[index]) and float(values[index]) > 0)
        for index in range(len(categories))
    ]
    if not any(total > 0 for total in totals):
        return _empty("stacked", title)
    legend, legend_height = _legend([(name, colour, False) for name, _, colour in stacks])
    y_ticks = nice_ticks(0.0, max(totals), 4)
    box = _plot_box(y_ticks, TITLE_SPACE + legend_height)
    y_of = _scale(0.0, y_ticks[-1], box.bottom, box.top)
    slot = (box.right - box.left) / len(categories)
    body = [*legend, *_y_axis(box, y_ticks, y_of, y_label), _line(box.left, box.bottom, box.right, box.bottom, GREY)]
    # Label every n-th category so labels never overlap, however many days are shown.
    widest = max(len(_clip(str(category), 12)) for category in categories) * CHAR_WIDTH + 10
    label_every = max(1, math.ceil(widest / slot))
    marks = 0
    for index, category in enumerate(categories):
        centre = box.left + slot * (index + 0.5)
        base = 0.0
        for name, values, colour in stacks:
            if _finite(values[index]) and float(values[index]) > 0:
                top = base + float(values[index])
                tooltip = f"{category} · {name}: {_full(values[index])}"
                height = y_of(base) - y_of(top)
                body.append(_rect(centre - slot * 0.36, y_of(top), max(slot * 0.72, 1), height, colour, tooltip))
                base, marks = top, marks + 1
        if index % label_every == 0:
            body.append(_text(centre, box.bottom + 14, _clip(str(category), 12), anchor="middle"))
    return _svg("stacked", title, box.bottom + 30, body, marks)


def heatmap_chart(
    matrix: Sequence[Sequence[float]],
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    x_label: str,
    y_label: str,
) -> str:
    """Draw a grid of cells shaded by value, each printing its value (a confusion matrix)."""
    rows = [list(row) for row in matrix]
    if not any(rows):
        return _empty("heatmap", title)
    columns = len(rows[0])
    if any(len(row) != columns for row in rows) or len(row_labels) != len(rows) or len(col_labels) != columns:
        raise ValueError(f"a {len(rows)}x{columns} heatmap needs a rectangular matrix and one label per row and column")
    finite = [float(value) for row in rows for value in row if _finite(value)]
    low, high = min([0.0, *finite]), max([0.0, *finite])
    label_right = 30 + min(160.0, max(len(_clip(str(label), 24)) for label in row_labels) * CHAR_WIDTH)
    cell_width = min(96.0, (WIDTH - label_right - 22) / columns)
    cell_height = 34.0 if len(rows) <= 10 else 22.0
    left = label_right + 6
    box = _Box(left, TITLE_SPACE, left + cell_width * columns, TITLE_SPACE + cell_height * len(rows))
    middle_y = (box.top + box.bottom) / 2
    body = [
        _text((box.left + box.right) / 2, box.bottom + 32, x_label, anchor="middle", fill=INK),
        _text(12, middle_y, y_label, anchor="middle", fill=INK, rotate=True),
    ]
    for row_index, (row_label, row) in enumerate(zip(row_labels, rows, strict=True)):
        top = box.top + row_index * cell_height
        body.append(_text(label_right, top + cell_height / 2 + 4, _clip(str(row_label), 24), anchor="end"))
        for col_index, (col_label, value) in enumerate(zip(col_labels, row, strict=True)):
            x = box.left + col_index * cell_width
            shade = (float(value) - low) / (high - low) if _finite(value) and high > low else 0.0
            shown = _cell(value) if _finite(value) else "–"
            tooltip = f"{y_label} {row_label}, {x_label} {col_label}: {shown}"
            # One unit smaller than the cell leaves a white gutter between neighbours.
            body.append(_rect(x, top, cell_width - 1, cell_height - 1, _mix(WHITE, BLUE, shade), tooltip))
            text_colour = WHITE if shade > 0.55 else INK
            centre_x, centre_y = x + cell_width / 2, top + cell_height / 2 + 4
            body.append(_text(centre_x, centre_y, shown, anchor="middle", fill=text_colour, css="leadml-cell", size=12))
    for col_index, col_label in enumerate(col_labels):
        centre = box.left + (col_index + 0.5) * cell_width
        body.append(_text(centre, box.bottom + 14, _clip(str(col_label), 14), anchor="middle"))
    return _svg("heatmap", title, box.bottom + 44, body, len(rows) * columns)


# --- drawing helpers: every data-derived text and colour is escaped in these -------------


def _svg(kind: str, title: str, height: float, body: list[str], points: int) -> str:
    root = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="leadml-chart leadml-chart-{kind}" role="img" '
        f'aria-label="{_esc(title)}" viewBox="0 0 {WIDTH} {_num(height)}" width="100%" '
        f'style="max-width:{WIDTH}px;height:auto" font-family="{FONT}" font-size="11" data-points="{points}">'
    )
    heading = _text(8, 18, title, fill=INK, css="leadml-title", size=12, bold=True)
    return "\n".join([root, f"<title>{_esc(title)}</title>", heading, *body, "</svg>"])


def _empty(kind: str, title: str) -> str:
    return _svg(kind, title, 80, [_text(WIDTH / 2, 56, "No data yet", anchor="middle")], 0)


def _text(
    x: float,
    y: float,
    content: object,
    *,
    anchor: str = "start",
    fill: str = GREY,
    css: str = "",
    size: int | None = None,
    bold: bool = False,
    rotate: bool = False,
    halo: bool = False,
) -> str:
    attributes = f' x="{_num(x)}" y="{_num(y)}" fill="{_esc(fill)}"'
    attributes += f' text-anchor="{anchor}"' if anchor != "start" else ""
    attributes += f' class="{css}"' if css else ""
    attributes += f' font-size="{size}"' if size else ""
    attributes += ' font-weight="600"' if bold else ""
    attributes += f' transform="rotate(-90 {_num(x)} {_num(y)})"' if rotate else ""
    # A white outline keeps a reference line's label readable where it crosses a bar or a line.
    attributes += f' stroke="{WHITE}" stroke-width="3" paint-order="stroke"' if halo else ""
    return f"<text{attributes}>{_esc(content)}</text>"


def _rect(x: float, y: float, width: float, height: float, fill: str, tooltip: str) -> str:
    return (
        f'<rect class="leadml-mark" x="{_num(x)}" y="{_num(y)}" width="{_num(max(width, 0))}" '
        f'height="{_num(max(height, 0))}" fill="{_esc(fill)}"><title>{_esc(tooltip)}</title></rect>'
    )


def _circle(x: float, y: float, fill: str, tooltip: str, *, css: str = "leadml-mark") -> str:
    return (
        f'<circle class="{css}" cx="{_num(x)}" cy="{_num(y)}" r="3" fill="{_esc(fill)}" fill-opacity="0.6">'
        f"<title>{_esc(tooltip)}</title></circle>"
    )


def _line(
    x1: float, y1: float, x2: float, y2: float, colour: str, *, dashed: bool = False, width: float = 1, css: str = ""
) -> str:
    extra = (' stroke-dasharray="5 4"' if dashed else "") + (f' class="{css}"' if css else "")
    return (
        f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
        f'stroke="{_esc(colour)}" stroke-width="{_num(width)}"{extra}/>'
    )


def _plot_box(y_ticks: Sequence[float], top: float) -> _Box:
    """Return a plot area whose left margin fits the widest y tick label and the axis title."""
    widest = max((len(_tick(tick)) for tick in y_ticks), default=1)
    return _Box(max(48.0, 30 + widest * CHAR_WIDTH), top, WIDTH - 20, top + PLOT_HEIGHT)


def _x_axis(
    box: _Box, ticks: Sequence[float], x_of: Scale, label: str, fmt: Callable[[float], str] | None = None
) -> list[str]:
    parts = [_line(box.left, box.bottom, box.right, box.bottom, GREY)]
    for tick in ticks:
        parts.append(_line(x_of(tick), box.top, x_of(tick), box.bottom, GRID))
        parts.append(_text(x_of(tick), box.bottom + 14, (fmt or _tick)(tick), anchor="middle"))
    if label:
        parts.append(_text((box.left + box.right) / 2, box.bottom + 32, label, anchor="middle", fill=INK))
    return parts


def _y_axis(box: _Box, ticks: Sequence[float], y_of: Scale, label: str) -> list[str]:
    parts = [_line(box.left, box.top, box.left, box.bottom, GREY)]
    for tick in ticks:
        parts.append(_line(box.left, y_of(tick), box.right, y_of(tick), GRID))
        parts.append(_text(box.left - 6, y_of(tick) + 4, _tick(tick), anchor="end"))
    if label:
        parts.append(_text(12, (box.top + box.bottom) / 2, label, anchor="middle", fill=INK, rotate=True))
    return parts


def _legend(entries: Sequence[tuple[str, str, bool]]) -> tuple[list[str], float]:
    """Return legend items in rows under the title and the height they take; none for one series."""
    if len(entries) < 2:
        return [], 0.0
    parts: list[str] = []
    x, y = 8.0, TITLE_SPACE - 4.0
    for name, colour, dashed in entries:
        text = _clip(str(name), 28)
        width = 22 + len(text) * CHAR_WIDTH + 14
        if x + width > WIDTH - 8 and x > 8:
            x, y = 8.0, y + 16
        swatch = _line(x, y, x + 18, y, colour, dashed=dashed, width=2.5)
        parts.append(f'<g class="leadml-legend">{swatch}{_text(x + 22, y + 4, text, fill=INK)}</g>')
        x += width
    return parts, y - (TITLE_SPACE - 4) + 18


def _scale(domain_low: float, domain_high: float, range_low: float, range_high: float) -> Scale:
    span = (domain_high - domain_low) or 1.0
    return lambda value: range_low + (value - domain_low) / span * (range_high - range_low)


def _date_ticks(low: float, high: float) -> list[float]:
    """Return whole-day positions (days since 1970-01-01), about seven at most."""
    span = high - low
    step = next((days for days in DATE_STEPS if span / days <= 7), 364 * math.ceil(span / 7 / 364))
    start = math.ceil(low)
    return [float(start + index * step) for index in range(int((high - start) // step) + 1)]


def _date_label(days: float, span: float) -> str:
    return (EPOCH + timedelta(days=days)).strftime("%m-%d" if span <= 366 else "%Y-%m")


def _x_value(raw: object, is_date: bool) -> float:
    """Return x as a number: days since 1970-01-01 for dates, so gaps between days show as gaps."""
    if not is_date:
        return float(raw)  # type: ignore[arg-type]
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    else:
        moment = datetime.fromisoformat(str(raw))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - EPOCH).total_seconds() / 86400


def _mix(start: str, stop: str, share: float) -> str:
    share = _clamp(share, 0.0, 1.0)
    channels = (round(int(start[i : i + 2], 16) * (1 - share) + int(stop[i : i + 2], 16) * share) for i in (1, 3, 5))
    return "#" + "".join(f"{channel:02x}" for channel in channels)


def _finite(value: object) -> bool:
    """Return whether value is a usable number: numpy scalars and Decimals count, None and NaN do not."""
    if value is None or isinstance(value, (str, bytes)):
        return False
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float) -> str:
    """Format a coordinate: a tenth of a unit is finer than a pixel and keeps the markup short."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _tick(value: float) -> str:
    return format(value, ",.10g")


def _short(value: float, *, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return format(value, f"{sign},.0f") if abs(value) >= 1000 else format(value, f"{sign}.3g")


def _full(value: float) -> str:
    # Ten significant digits: the stored value without float noise such as 0.30000000000000004.
    return format(float(value), ".10g")


def _cell(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"
