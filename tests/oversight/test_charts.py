"""Server-rendered SVG charts: well-formed XML, honest data-points, escaped text. No database."""
from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from oversight.charts import (
    BLUE,
    RED,
    Series,
    bar_chart,
    heatmap_chart,
    histogram_chart,
    line_chart,
    nice_ticks,
    scatter_chart,
    stacked_bar_chart,
)

REPO = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<b>&"x"'
HOSTILE_ESCAPED = "&lt;b&gt;&amp;&quot;x&quot;"


def classes(element: ET.Element) -> list[str]:
    return element.get("class", "").split()


def marks(root: ET.Element) -> list[ET.Element]:
    return [element for element in root.iter() if "leadml-mark" in classes(element)]


def parse_chart(svg: str, kind: str, title: str, points: int | None = None) -> ET.Element:
    """Parse a chart, check the root attributes every chart shares, and return the root."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert classes(root) == ["leadml-chart", f"leadml-chart-{kind}"]
    assert root.get("role") == "img"
    assert root.get("aria-label") == title
    assert root.get("width") == "100%"
    view_box = [float(number) for number in root.get("viewBox", "").split()]
    assert len(view_box) == 4 and view_box[2] > 0 and view_box[3] > 0
    assert int(root.get("data-points", "-1")) == len(marks(root))
    if points is not None:
        assert len(marks(root)) == points
    return root


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def roc_series() -> Series:
    return Series("ROC", [(0.0, 0.0), (0.1, 0.5), (0.3, 0.8), (1.0, 1.0)])


EMPTY_CHARTS = {
    "bar": lambda: bar_chart([], title="Importance"),
    "line": lambda: line_chart([], title="Importance", x_label="x", y_label="y"),
    "scatter": lambda: scatter_chart([], title="Importance", x_label="x", y_label="y"),
    "histogram": lambda: histogram_chart([], title="Importance", x_label="x"),
    "stacked": lambda: stacked_bar_chart([], [], title="Importance", y_label="y"),
    "heatmap": lambda: heatmap_chart([], row_labels=[], col_labels=[], title="Importance", x_label="x", y_label="y"),
}


@pytest.mark.parametrize("kind", sorted(EMPTY_CHARTS))
def test_empty_input_says_no_data_yet(kind: str) -> None:
    root = parse_chart(EMPTY_CHARTS[kind](), kind, "Importance", points=0)
    assert root.get("data-points") == "0"
    assert "No data yet" in texts(root)


def test_line_with_only_missing_values_counts_as_empty() -> None:
    svg = line_chart([Series("AUC", [("2024-11-01", None)])], title="AUC", x_label="Day", y_label="AUC", x_is_date=True)
    assert "No data yet" in texts(parse_chart(svg, "line", "AUC", points=0))


HOSTILE_CHARTS = {
    "bar": lambda: bar_chart([(HOSTILE, 1.0)], title=HOSTILE, value_label=HOSTILE),
    "line": lambda: line_chart(
        [Series(HOSTILE, [(0, 1.0), (1, 2.0)]), Series("other", [(0, 2.0), (1, 1.0)])],
        title=HOSTILE,
        x_label=HOSTILE,
        y_label=HOSTILE,
        hlines=[(1.5, HOSTILE)],
    ),
    "scatter": lambda: scatter_chart([(1.0, 2.0)], title=HOSTILE, x_label=HOSTILE, y_label=HOSTILE),
    "histogram": lambda: histogram_chart([(0.0, 1.0, 3)], title=HOSTILE, x_label=HOSTILE, thresholds=[(0.5, HOSTILE)]),
    "stacked": lambda: stacked_bar_chart(
        [HOSTILE, "b"], [(HOSTILE, [1, 2], BLUE), ("rules", [1, 1], RED)], title=HOSTILE, y_label=HOSTILE
    ),
    "heatmap": lambda: heatmap_chart(
        [[1, 2]], row_labels=[HOSTILE], col_labels=[HOSTILE, "b"], title=HOSTILE, x_label=HOSTILE, y_label=HOSTILE
    ),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_CHARTS))
def test_text_from_data_is_escaped(kind: str) -> None:
    svg = HOSTILE_CHARTS[kind]()
    assert "<b>" not in svg
    assert HOSTILE_ESCAPED in svg
    root = parse_chart(svg, kind, HOSTILE)
    assert HOSTILE in texts(root)


def test_script_feature_name_renders_as_text() -> None:
    svg = bar_chart([("<script>alert(1)</script>", 0.5)], title="Importance")
    assert "<script" not in svg
    assert "<script>alert(1)</script>" in texts(parse_chart(svg, "bar", "Importance", points=1))


def test_bar_chart_draws_one_bar_per_item_with_exact_value_tooltips() -> None:
    items = [("visits", 0.31), ("age", 0.125), ("country", 0.02)]
    root = parse_chart(bar_chart(items, title="Importance", value_label="gain"), "bar", "Importance", points=3)
    tooltips = [mark.find(f"{SVG}title").text for mark in marks(root)]
    assert tooltips == ["visits: 0.31 gain", "age: 0.125 gain", "country: 0.02 gain"]
    widths = [float(mark.get("width")) for mark in marks(root)]
    assert widths[0] > widths[1] > widths[2] > 0


def test_signed_bars_go_left_of_the_zero_line() -> None:
    svg = bar_chart([("visits", 0.4), ("age", -0.2)], title="Contributions", signed=True)
    root = parse_chart(svg, "bar", "Contributions", points=2)
    zero_x = float(next(element for element in root.iter() if "leadml-zero" in classes(element)).get("x1"))
    positive, negative = marks(root)
    assert float(negative.get("x")) < zero_x
    assert float(negative.get("x")) + float(negative.get("width")) == pytest.approx(zero_x, abs=0.1)
    assert float(positive.get("x")) == pytest.approx(zero_x, abs=0.1)
    assert "-0.2" in texts(root) and "+0.4" in texts(root)


def test_highlight_colours_chosen_bars_red_and_others_blue() -> None:
    items = [("visits", 0.4), ("age", 0.05), ("country", 0.3)]
    svg = bar_chart(items, title="Drift", highlight=lambda name, psi: psi > 0.25)
    fills = [mark.get("fill") for mark in marks(parse_chart(svg, "bar", "Drift", points=3))]
    assert fills == [RED, BLUE, RED]


def test_bar_chart_keeps_the_largest_items_in_their_order() -> None:
    items = [("a", 0.1), ("b", -0.9), ("c", 0.5), ("d", 0.05)]
    root = parse_chart(bar_chart(items, title="Top", max_items=2, signed=True), "bar", "Top", points=2)
    assert [mark.find(f"{SVG}title").text.split(":")[0] for mark in marks(root)] == ["b", "c"]
    assert "2 more not shown" in texts(root)


def test_roc_curve_has_one_line_a_diagonal_and_no_legend() -> None:
    svg = line_chart([roc_series()], title="ROC", x_label="FPR", y_label="TPR", y_range=(0.0, 1.0), diagonal=True)
    root = parse_chart(svg, "line", "ROC", points=1)
    assert [mark.tag for mark in marks(root)] == [f"{SVG}polyline"]
    assert any("leadml-ref" in classes(element) for element in root.iter(f"{SVG}line"))
    assert not [element for element in root.iter() if "leadml-legend" in classes(element)]
    assert "ROC: 0.3 → 0.8" in svg  # marker tooltips carry the exact values


def test_missing_value_breaks_the_line() -> None:
    points = [("2024-11-01", 0.7), ("2024-11-02", 0.72), ("2024-11-03", None), ("2024-11-04", 0.69)]
    svg = line_chart([Series("AUC", points)], title="AUC", x_label="Day", y_label="AUC", x_is_date=True)
    lines = marks(parse_chart(svg, "line", "AUC", points=2))
    assert [len(line.get("points").split()) for line in lines] == [2, 1]


def test_dates_are_placed_in_order_and_labelled_as_days() -> None:
    points = [("2024-11-24", 0.8), ("2024-11-02", 0.7), ("2024-11-13", 0.75)]
    svg = line_chart([Series("AUC", points)], title="AUC", x_label="Day", y_label="AUC", x_is_date=True)
    root = parse_chart(svg, "line", "AUC", points=1)
    xs = [float(pair.split(",")[0]) for pair in marks(root)[0].get("points").split()]
    assert xs == sorted(xs) and len(set(xs)) == 3
    day_labels = [text for text in texts(root) if len(text) == 5 and text[2] == "-"]
    assert day_labels == sorted(day_labels) and len(day_labels) >= 3
    assert day_labels[0] >= "11-02" and day_labels[-1] <= "11-24"


def test_several_series_get_a_legend_and_labelled_reference_lines() -> None:
    series = [
        Series("Live", [(1, 0.7), (2, 0.72)]),
        Series("Training", [(1, 0.8), (2, 0.8)], dashed=True, markers=False, color="#16a34a"),
    ]
    svg = line_chart(series, title="AUC", x_label="Week", y_label="AUC", hlines=[(0.6, "Alert")])
    root = parse_chart(svg, "line", "AUC", points=2)
    assert {"Live", "Training", "Alert"} <= set(texts(root))
    training = marks(root)[1]
    assert training.get("stroke") == "#16a34a" and training.get("stroke-dasharray")


def test_scatter_draws_every_point_under_the_limit() -> None:
    points = [(float(index), float(index) * 1.1) for index in range(40)]
    svg = scatter_chart(points, title="Predicted vs actual", x_label="Predicted", y_label="Actual", diagonal=True)
    parse_chart(svg, "scatter", "Predicted vs actual", points=40)


def test_scatter_thins_out_to_max_points_deterministically() -> None:
    points = [(float(index), float(index % 7)) for index in range(2000)]
    first = scatter_chart(points, title="Residuals", x_label="Predicted", y_label="Residual", hline=0, max_points=150)
    second = scatter_chart(points, title="Residuals", x_label="Predicted", y_label="Residual", hline=0, max_points=150)
    assert first == second
    root = parse_chart(first, "scatter", "Residuals", points=150)
    sampled = [float(mark.find(f"{SVG}title").text.split()[1].rstrip(",")) for mark in marks(root)]
    # An evenly spaced sample in input order that spans the whole input, not just its head.
    assert sampled == sorted(sampled)
    assert sampled[0] == 0 and sampled[-1] >= 1980


def test_histogram_draws_each_bin_and_labelled_thresholds() -> None:
    bins = [(0.0, 0.25, 10), (0.25, 0.5, 30), (0.5, 0.75, 20), (0.75, 1.0, 5)]
    svg = histogram_chart(bins, title="Scores", x_label="Score", thresholds=[(0.4, "C"), (0.6, "B"), (0.8, "A")])
    root = parse_chart(svg, "histogram", "Scores", points=4)
    heights = [float(mark.get("height")) for mark in marks(root)]
    assert heights[1] == max(heights) and heights[3] == min(heights)
    assert {"A", "B", "C"} <= set(texts(root))


def test_stacked_bars_stack_per_category_and_thin_their_labels() -> None:
    days = [f"2024-11-{day:02d}" for day in range(1, 31)]
    stacks = [("Model", [10.0] * 30, BLUE), ("Rules fallback", [5.0] * 29 + [0.0], "#f59e0b")]
    root = parse_chart(stacked_bar_chart(days, stacks, title="Per day", y_label="Predictions"), "stacked", "Per day")
    assert len(marks(root)) == 59  # a zero value draws nothing
    model, rules = marks(root)[0], marks(root)[1]
    assert float(rules.get("y")) + float(rules.get("height")) == pytest.approx(float(model.get("y")), abs=0.1)
    shown_days = [text for text in texts(root) if text in days]
    assert 2 <= len(shown_days) < len(days) and shown_days[0] == days[0]
    assert {"Model", "Rules fallback"} <= set(texts(root))


def test_stacked_bars_reject_values_that_do_not_match_categories() -> None:
    with pytest.raises(ValueError):
        stacked_bar_chart(["a", "b"], [("Model", [1.0], BLUE)], title="Per day", y_label="n")


def test_heatmap_prints_each_value_with_contrasting_text() -> None:
    matrix = [[812, 43], [91, 254]]
    labels = ["lost", "won"]
    svg = heatmap_chart(
        matrix, row_labels=labels, col_labels=labels, title="Confusion", x_label="Predicted", y_label="Actual"
    )
    root = parse_chart(svg, "heatmap", "Confusion", points=4)
    cells = {
        element.text: element.get("fill") for element in root.iter(f"{SVG}text") if "leadml-cell" in classes(element)
    }
    assert set(cells) == {"812", "43", "91", "254"}
    assert cells["812"] == "#ffffff" and cells["43"] != "#ffffff"
    fills = [mark.get("fill") for mark in marks(root)]
    assert fills[0] == BLUE and len(set(fills)) == 4


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 1, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 37, [0.0, 10.0, 20.0, 30.0, 40.0]),
        (-0.13, 0.21, [-0.2, -0.1, 0.0, 0.1, 0.2, 0.3]),
        (0, 0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_nice_ticks_are_round_and_cover_the_range(low: float, high: float, expected: list[float]) -> None:
    assert nice_ticks(low, high) == expected


@pytest.mark.parametrize(("low", "high"), [(0.65, 0.812), (3, 4917), (-1234.5, 99.9), (1e-4, 3e-4), (7, 7)])
def test_nice_ticks_use_one_round_step(low: float, high: float) -> None:
    ticks = nice_ticks(low, high)
    steps = {round(right - left, 12) for left, right in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in {1, 2, 2.5, 5}
    assert ticks[0] <= low and ticks[-1] >= high and 3 <= len(ticks) <= 8


def test_importing_charts_does_not_import_django() -> None:
    code = "import sys, oversight.charts; assert 'django' not in sys.modules"
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_missing_and_non_finite_values_are_skipped_not_drawn_as_nan() -> None:
    svg = bar_chart([("a", float("nan")), ("b", None), ("c", 0.5)], title="Importance")  # type: ignore[list-item]
    parse_chart(svg, "bar", "Importance", points=1)
    svg = scatter_chart([(1.0, float("inf")), (2.0, 3.0), (float("nan"), 1.0)], title="S", x_label="x", y_label="y")
    parse_chart(svg, "scatter", "S", points=1)
    svg = line_chart([Series("a", [(float("nan"), 1.0), (1.0, 2.0), (2.0, 3.0)])], title="L", x_label="x", y_label="y")
    parse_chart(svg, "line", "L", points=1)
    assert "nan" not in svg.lower()
