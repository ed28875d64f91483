"""§7's frontier explorer: pick an estimator, K and an objective, and see where that curve's frontier
lies, ours beside the paper's, over all our other frontiers (live with ipywidgets; static with plotly)."""

from __future__ import annotations

import json
import math
from typing import Any

from ..naming import curve_label
from . import widgets
from .figures import load_curve, lowest_excess, synthetic_curve_ids

FRONTIER_ESTIMATORS = ("ELBO", "IWAE", "DReG", "REINFORCE", "VIMCO", "VQ-VAE")
FRONTIER_SAMPLES = ("1", "16", "64", "16/1", "1/16")
FRONTIER_OBJECTIVES = ("KL", "Rényi", "power")


def _frontier_key(curve_id: str) -> str:
    """ "estimator|K|objective" of a curve, as the explorer's menus spell it."""
    if curve_id == "vqvae":
        return "VQ-VAE|1|KL"
    name, objective = curve_label(curve_id).split(", ")
    parts = name.split(" ")
    return f"{parts[0]}|{parts[1] if len(parts) > 1 else '1'}|{objective}"


def frontier_explorer_data(profile: str = "cpu", min_usage: float = 0.8) -> dict[str, Any]:
    """Every synthetic curve on the normalised axes, keyed "estimator|K|objective": the paper's frontier,
    our frontier and all our trials, our counts and compute, and the lowest excess NLL at usage >= m."""
    curves, ours_settings, paper_settings = {}, set(), set()
    for curve_id in synthetic_curve_ids():
        c = load_curve(curve_id, profile)
        paper_settings.add(c.paper.setting_label)
        if c.ours is not None:
            ours_settings.add(c.ours.setting_label)
        front = c.paper.frontier()
        entry = {
            "label": c.label,
            "study": f"params/studies/{profile}/{curve_id}.yaml",
            "paper": {"x": c.paper.mi[front].round(4).tolist(), "y": c.paper.nll[front].round(4).tolist()},
            "paper_trials": len(c.paper.mi),
            "paper_lowest": _json_number(lowest_excess(c.paper, min_usage)),
            "complete": c.complete,
            "rows": c.rows,
            "wall_s": round(c.wall_s, 1),
            "ours": {"x": [], "y": []},
            "ours_all": {"x": [], "y": []},
            "ours_lowest": None,
        }
        if c.ours is not None:
            front = c.ours.frontier()
            entry["ours"] = {"x": c.ours.mi[front].round(4).tolist(), "y": c.ours.nll[front].round(4).tolist()}
            entry["ours_all"] = {"x": c.ours.mi.round(4).tolist(), "y": c.ours.nll.round(4).tolist()}
            entry["ours_lowest"] = _json_number(lowest_excess(c.ours, min_usage))
        curves[_frontier_key(curve_id)] = entry
    return {"profile": profile, "min_usage": min_usage, "curves": curves, "estimators": list(FRONTIER_ESTIMATORS),
            "samples": list(FRONTIER_SAMPLES), "objectives": list(FRONTIER_OBJECTIVES),
            "ours_setting": ", ".join(sorted(ours_settings)) or "no results",
            "paper_setting": ", ".join(sorted(paper_settings))}  # fmt: skip


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def frontier_title(data: dict[str, Any], key: str) -> str:
    """The explorer's caption for a choice: what it is, how many trials, where the frontier is at m."""
    entry = data["curves"].get(key)
    if entry is None:
        return f"{key.replace('|', ' ')}: not a curve of the paper's synthetic figures"
    m = data["min_usage"]
    paper = "–" if entry["paper_lowest"] is None else f"{entry['paper_lowest']:.4f}"
    if entry["complete"]:
        ours = "–" if entry["ours_lowest"] is None else f"{entry['ours_lowest']:.4f}"
        line = f"ours: {entry['complete']} complete of {entry['rows']} trials, {entry['wall_s'] / 60:.1f} min"
    else:
        ours, line = "no results", f"ours: no results yet ({entry['study']})"
    return (f"{entry['label']} — {line}; paper: {entry['paper_trials']} trials<br>"
            f"lowest excess NLL at usage ≥ {m:g} ln V: ours {ours}, paper {paper}")  # fmt: skip


# the page script's own part: widgets.static_html adds the div lookup, the listener, a first redraw
FRONTIER_SCRIPT = """\
  var data = {data};
  var state = {start};
  function redraw() {
    var key = [data.estimators[state.estimator], data.samples[state.samples],
               data.objectives[state.objective]].join('|');
    if (data.estimators[state.estimator] === 'VQ-VAE') key = 'VQ-VAE|1|KL';
    var c = data.curves[key], empty = {x: [], y: []};
    var title = c ? c.title : key.split('|').join(' ') + ': not a curve of the paper\\'s synthetic figures';
    var paper = c ? c.paper : empty, ours = c ? c.ours : empty, all = c ? c.ours_all : empty;
    Plotly.update(gd, {x: [paper.x, all.x, ours.x], y: [paper.y, all.y, ours.y]}, {'title.text': title}, {traces});
  }
"""


def static_frontier_explorer_html(data: dict[str, Any], div_id: str = "micmco-frontiers",
                                  start: str = "VIMCO|16|Rényi") -> str:  # fmt: skip
    """The frontier explorer for the static book: every committed frontier in grey, the chosen curve
    (three menus: estimator, K, objective) in colour beside the paper's; plotly.js embedded, no kernel."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for entry in data["curves"].values():
        if entry["ours"]["x"]:
            fig.add_trace(go.Scatter(x=entry["ours"]["x"], y=entry["ours"]["y"], mode="lines", hoverinfo="name",
                                     name=entry["label"], line={"color": "rgba(150,150,150,0.35)", "width": 1},
                                     showlegend=False))  # fmt: skip
    background = len(fig.data)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=f"the paper's frontier ({data['paper_setting']})",
                             line={"dash": "dash", "color": "rgba(31,119,180,0.6)"}, marker={"size": 4}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=f"our trials ({data['profile']}, {data['ours_setting']})",
                             marker={"color": "rgba(214,39,40,0.3)", "size": 6}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="our frontier",
                             line={"color": "rgb(214,39,40)", "width": 2.5}))  # fmt: skip
    estimator, samples, objective = start.split("|")
    state = {"estimator": data["estimators"].index(estimator), "samples": data["samples"].index(samples),
             "objective": data["objectives"].index(objective)}  # fmt: skip
    fig.update_layout(
        height=560, margin={"t": 170, "b": 60, "l": 60, "r": 20},
        title={"text": "", "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.97, "yanchor": "top"},
        xaxis={"title": "latent usage: MI / ln V", "range": [0, 1.05]},
        yaxis={"title": "excess NLL: NLL − ln V (nats)", "range": [-0.01, 0.32]},
        legend={"orientation": "h", "x": 0.0, "y": 1.02, "yanchor": "bottom", "font": {"size": 11}},
        updatemenus=[widgets.menu("estimator", data["estimators"], 0.1, 1.22, state["estimator"]),
                     widgets.menu("samples", data["samples"], 0.4, 1.22, state["samples"]),
                     widgets.menu("objective", data["objectives"], 0.7, 1.22, state["objective"])],
        annotations=[widgets.menu_label("estimator", 0.095, 1.25), widgets.menu_label("K (or K/K′)", 0.395, 1.25),
                     widgets.menu_label("objective", 0.695, 1.25)],
    )  # fmt: skip
    payload = {**data, "curves": {k: {**v, "title": frontier_title(data, k)} for k, v in data["curves"].items()}}
    values = {
        "data": json.dumps(payload),
        "start": json.dumps(state),
        "traces": json.dumps([background, background + 1, background + 2]),
    }
    return widgets.static_html(fig, div_id, FRONTIER_SCRIPT, values)


class FrontierExplorer(widgets.LiveFigure):
    """The frontier explorer in a live kernel: three ipywidgets menus redraw the chosen curve over the
    others (``controls``; ``update()`` is their callback; ``shown`` is the key last drawn)."""

    def __init__(self, data: dict[str, Any], start: str = "VIMCO|16|Rényi"):
        import ipywidgets

        self.data = data
        estimator, samples, objective = start.split("|")
        controls = {
            "estimator": ipywidgets.Dropdown(options=data["estimators"], value=estimator, description="estimator"),
            "samples": ipywidgets.Dropdown(options=data["samples"], value=samples, description="K (or K/K′)"),
            "objective": ipywidgets.Dropdown(options=data["objectives"], value=objective, description="objective"),
        }
        self.shown = ""
        super().__init__(controls, [list(controls)], figsize=(7.5, 4.2))

    @property
    def ax(self):
        """The figure's one panel."""
        return self.axes

    @property
    def key(self) -> str:
        c = self.controls
        if c["estimator"].value == "VQ-VAE":
            return "VQ-VAE|1|KL"
        return f"{c['estimator'].value}|{c['samples'].value}|{c['objective'].value}"

    def draw(self) -> None:
        """Draw the chosen curve over the others."""
        self.shown = self.key
        draw_frontier_choice(self.ax, self.data, self.shown)


def draw_frontier_choice(ax, data: dict[str, Any], key: str) -> None:
    """The explorer's plot on matplotlib axes: every frontier of ours in grey, the chosen one in colour."""
    ax.clear()
    for entry in data["curves"].values():
        if entry["ours"]["x"]:
            ax.plot(entry["ours"]["x"], entry["ours"]["y"], color="0.75", lw=0.8)
    entry = data["curves"].get(key)
    if entry is not None:
        ax.plot(entry["paper"]["x"], entry["paper"]["y"], "--", marker=".", color="tab:blue", alpha=0.6,
                label=f"the paper's frontier ({data['paper_setting']})")  # fmt: skip
        ax.plot(entry["ours_all"]["x"], entry["ours_all"]["y"], "o", color="tab:red", alpha=0.3, ms=4,
                label="our trials")  # fmt: skip
        ax.plot(entry["ours"]["x"], entry["ours"]["y"], "-o", color="tab:red", ms=4, label="our frontier")
        ax.legend(fontsize=8, frameon=False)
    ax.set(xlim=(0, 1.05), ylim=(-0.01, 0.32), xlabel="latent usage: MI / ln V", ylabel="excess NLL (nats)")
    ax.grid(alpha=0.3)
    ax.set_title(frontier_title(data, key).replace("<br>", "\n"), fontsize=9)
