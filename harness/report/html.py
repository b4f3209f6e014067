"""report.html: one self-contained page with plotly figures (plotly.js inlined once).

Per case, a backend × quantity heatmap of the worst log10(err/tol), and for multi-step
cases the worst err/tol of each backend over the steps. The page works offline: nothing
is fetched when it opens. A huge run's page plots a bounded number of cases and lists a
bounded number of pairs, failing ones first (harness/report/writer.py chooses them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from harness.report.summaries import PairSummary
from harness.text import html
from harness.verdict.localize import STAGES
from harness.verdict.status import COMPARED


def margins(table: pd.DataFrame) -> pd.DataFrame:
    """Compared rows with ``margin`` = abs_err / tol (0 where the values are equal)."""
    rows = table[table["status"].isin(COMPARED)].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = rows["abs_err"].to_numpy(dtype=np.float64) / rows["tol"].to_numpy(dtype=np.float64)
    rows["margin"] = np.where(rows["abs_err"].to_numpy(dtype=np.float64) == 0, 0.0, margin)
    return rows


# Figures are plain plotly.js specs (dicts), not plotly.graph_objects: validating graph
# objects costs tens of milliseconds a figure, seconds for a report of a few hundred cases.


def heatmap(rows: pd.DataFrame, case: str) -> dict[str, Any]:
    worst = rows.groupby(["backend", "quantity"], sort=False)["margin"].max().unstack()
    quantities = [q for q in STAGES if q in worst.columns]
    values = worst[quantities].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = np.log10(np.maximum(values, 1e-6))
    trace = {
        "type": "heatmap",
        "z": z.tolist(),
        "x": quantities,
        "y": [html(b) for b in worst.index],  # plotly.js reads labels as HTML
        "zmin": -6,
        "zmax": 2,
        "colorscale": _red_yellow_green_reversed(),
        "colorbar": {"title": {"text": "log10 err/tol"}},
        "text": [[f"{v:.3g}" for v in row] for row in values],
        "texttemplate": "%{text}",
        "hovertemplate": "%{y} %{x}: worst err/tol %{text}<extra></extra>",
    }
    layout = {
        "title": {
            "text": f"{html(case)}: worst err/tol per backend and quantity (above 1 diverges)"
        },
        "height": 160 + 40 * len(worst),
    }
    return {"data": [trace], "layout": layout}


def _red_yellow_green_reversed() -> list[list[Any]]:
    """ColorBrewer RdYlGn reversed (green = agrees, red = diverges) as a plotly.js scale;
    plotly.js knows only a few scales by name, plotly.py resolves the rest itself."""
    from plotly.colors import get_colorscale

    return [list(stop) for stop in get_colorscale("RdYlGn_r")]


def steps_plot(rows: pd.DataFrame, case: str) -> dict[str, Any]:
    per_step = rows.dropna(subset=["step"]).groupby(["backend", "step"], sort=False)["margin"].max()
    traces = []
    for backend, series in per_step.groupby(level=0, sort=False):
        steps = series.index.get_level_values("step").astype(int)
        traces.append(
            {
                "type": "scatter",
                "x": [int(s) for s in steps],
                "y": np.maximum(series.to_numpy(dtype=np.float64), 1e-12).tolist(),
                "mode": "lines+markers",
                "name": html(backend),
            }
        )
    tolerance = {  # err/tol = 1 across the plot: above it a value diverges
        "type": "line",
        "xref": "x domain",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": 1.0,
        "y1": 1.0,
        "line": {"dash": "dash"},
    }
    layout = {
        "title": {"text": f"{html(case)}: worst err/tol over steps"},
        "xaxis": {"title": {"text": "step"}, "dtick": 1},
        "yaxis": {"title": {"text": "worst err/tol"}, "type": "log"},
        "shapes": [tolerance],
        "annotations": [
            {
                "text": "tolerance",
                "xref": "x domain",
                "x": 1,
                "yref": "y",
                "y": 0,  # log axis: the annotation's y is log10(1)
                "showarrow": False,
                "xanchor": "right",
                "yanchor": "bottom",
            }
        ],
        "height": 360,
    }
    return {"data": traces, "layout": layout}


def case_margins(table: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """Each case with compared rows, in table order, and those rows' plotted columns."""
    rows = margins(table)[["case", "backend", "quantity", "step", "margin"]]
    for case, case_rows in rows.groupby("case", sort=False):
        yield str(case), case_rows.drop(columns="case")


def report_html(
    plotted: Iterable[tuple[str, pd.DataFrame]],
    reference: str,
    summaries: Iterable[PairSummary],
    summary_md: str,
    left_out: str = "",
) -> str:
    """The whole page as one string.

    ``plotted``: the cases to plot with their ``case_margins`` rows; ``left_out`` says
    what a huge run's page leaves to summary.md and results.csv.
    """
    import plotly.io as pio

    figures = []
    for case, case_rows in plotted:
        figures.append(heatmap(case_rows, case))
        others = case_rows[case_rows["backend"] != reference]  # the reference is 0 by definition
        if case_rows["step"].nunique() > 1 and len(others):
            figures.append(steps_plot(others, case))
    parts = [
        pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=(i == 0),
            div_id=f"figure-{i}",
            validate=False,
        )
        for i, figure in enumerate(figures)
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>crossgrad report</title>"
        "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse}"
        " td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px} pre{white-space:pre-wrap}</style>"
        "</head><body>\n<h1>crossgrad report</h1>\n"
        + (f"<p><strong>{html(left_out)}</strong></p>\n" if left_out else "")
        + _pair_table(summaries)
        + "\n<h2>Plots</h2>\n"
        + "\n".join(f'<div class="figure">{part}</div>' for part in parts)
        + "\n<h2>summary.md</h2>\n<pre>"
        + html(summary_md)
        + "</pre>\n</body></html>\n"
    )


def _pair_table(summaries: Iterable[PairSummary]) -> str:
    header = (
        "case",
        "backend",
        "status",
        "worst err/tol",
        "first divergence",
        "cause",
        "off the oracle",
    )
    lines = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for s in summaries:
        cells = (
            s.case,
            s.backend,
            s.status,
            f"{s.worst_margin:.3g}",
            s.first_divergence,
            s.cause,
            s.off_oracle,
        )
        lines.append(
            f'<tr class="{html(s.status)}">'
            + "".join(f"<td>{html(c)}</td>" for c in cells)
            + "</tr>"
        )
    return "\n".join([*lines, "</table>"])
