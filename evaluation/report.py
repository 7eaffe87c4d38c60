"""The evaluation report: results.json, report.html and its PNG plots, from the results dict alone.

`write_report(results, out_dir)` writes

    results.json            the results dict as given (evaluation.run.evaluate plus run metadata)
    report.html             self-contained HTML (inline CSS) referring to the images relatively
    latency_cdf.png         CDFs of turn-taking latency and barge-in stop latency, model and
                            cascade on the same axes, with the goals marked
    timelines/<name>.png    per call: caller turns, pauses, backchannels, echo, the model's floor
                            per micro-turn, its speech and tool calls, the cascade's speech; caller
                            turn ends (dashed) and barge-in onsets (red)

and `goals(summary)` says, per goal of issue 5, the measured value and whether it is met.
`write_bridged_report` does the same for `parley eval --bridged` (evaluation.bridged.evaluate_bridged):
results.json, report.html with each direction against issue 16's goals, and a timeline per call of
what each party said and heard. Every plot is drawn from the JSON, so a report can be redrawn from
a results.json. This module knows nothing of the model, the server or audio.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

GOALS = (  # (label, summary key, comparison, target); intelligibility is relative, see `goals`
    ("Pause takeover rate", "pause_takeover_rate", "<=", 0.05),
    ("Turn-taking rate", "turn_taking_rate", ">=", 0.95),
    ("Turn-taking latency p50 (s)", "turn_latency_p50", "<=", 0.30),
    ("False stops on caller backchannels", "false_stop_rate_backchannel", "<=", 0.05),
    ("False stops on echo", "false_stop_rate_echo", "<=", 0.05),
    ("Barge-in stop latency p90 (s)", "barge_in_stop_p90", "<=", 0.25),
    ("Tool-call accuracy", "tool_call_accuracy", ">=", 0.95),
)
WER_FACTOR = 1.5
OTHER_ROWS = (  # reported without a goal
    ("Turn-taking latency p90 (s)", "turn_latency_p90"),
    ("Barge-in stop latency p50 (s)", "barge_in_stop_p50"),
    ("Barge-ins stopped within 2 s", "barge_in_success_rate"),
    ("Agent backchannels per minute of caller speech", "agent_backchannels_per_minute"),
    ("Translation chrF", "chrf"),
    (
        "Turn ends / pauses / barge-ins / caller backchannels / echoes",
        ("n_turn_ends", "n_pauses", "n_barge_ins", "n_caller_backchannels", "n_echoes"),
    ),
    (
        "Tool calls expected / correct / extra",
        ("tool_calls_expected", "tool_calls_correct", "tool_calls_extra"),
    ),
    (
        "Caller interjections played / planned (met the agent talking)",
        ("n_interjections_triggered", "n_interjections_planned"),
    ),
)
BACKGROUND_ROWS = (  # with the background model beside the calls (`parley eval --background`)
    ("Agent WER against the words it meant (replies given + its own text)", "agent_meant_wer"),
    ("Words the agent meant (with a transcript)", "agent_meant_words"),
    ("Lookups whose answer the caller hears (status and date)", "lookup_heard"),
    ("Calls with a successful lookup (and a transcript)", "n_lookup_calls"),
    (
        "Segment end -> caller words, p50 / p90 (s)",
        ("delay_words_p50", "delay_words_p90", "n_delay_words"),
    ),
    (
        "Caller words -> reply, p50 / p90 (s)",
        ("delay_reply_after_words_p50", "delay_reply_after_words_p90", "n_delay_reply_after_words"),
    ),
    (
        "Tool result -> reply, p50 / p90 (s)",
        ("delay_reply_after_tool_p50", "delay_reply_after_tool_p90", "n_delay_reply_after_tool"),
    ),
    (
        "Caller turn end -> reply, p50 / p90 (s)",
        (
            "delay_reply_after_turn_end_p50",
            "delay_reply_after_turn_end_p90",
            "n_delay_reply_after_turn_end",
        ),
    ),
)
FLOOR_COLOURS = {"speak": "#2e7d32", "backchannel": "#f9a825", "yield": "#c62828"}  # listen: none


def _met(value, op: str, target: float) -> bool | None:
    if value is None:
        return None
    return value <= target if op == "<=" else value >= target


def goals(summary: dict) -> list[dict]:
    """Per goal: label, goal text, and per system (model, cascade when present) value and met."""
    systems = [s for s in ("model", "cascade") if s in summary]
    rows = []
    for label, key, op, target in GOALS:
        row: dict[str, Any] = {"metric": label, "key": key, "goal": f"{op} {target:g}"}
        for s in systems:
            value = summary[s].get(key)
            row[s] = value
            row[f"{s}_met"] = _met(value, op, target)
        rows.append(row)
    ref = summary.get("reference", {}).get("wer")
    row = {
        "metric": "Intelligibility: WER of the recogniser",
        "key": "wer",
        "goal": f"<= {WER_FACTOR:g} x reference WER"
        + (f" = {WER_FACTOR * ref:.3f}" if ref is not None else ""),
        "reference": ref,
    }
    for s in systems:
        value = summary[s].get("wer")
        row[s] = value
        row[f"{s}_met"] = None if ref is None else _met(value, "<=", WER_FACTOR * ref)
    rows.append(row)
    return rows


# -------------------------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cdf(ax, values: list[float], label: str, colour: str, x_end: float) -> None:
    if not values:
        return
    xs = sorted(values)
    ys = [(i + 1) / len(xs) for i in range(len(xs))]
    ax.step(
        [0.0] + xs + [x_end], [0.0] + ys + [1.0], where="post", label=f"{label} (n={len(xs)})", color=colour
    )


def plot_latency_cdfs(results: dict, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = (
        ("Turn-taking latency (caller turn end -> agent onset)", "turns", 0.30, "p50 goal"),
        ("Barge-in stop latency (caller onset -> agent silent)", "barge_in_latencies", 0.25, "p90 goal"),
    )
    for ax, (title, key, goal, goal_label) in zip(axes, panels):
        values = {
            s: [x for c in results["calls"] if s in c for x in c[s]["metrics"][key] if x is not None]
            for s in ("model", "cascade")
        }
        x_end = max([goal * 1.5] + [x * 1.05 for v in values.values() for x in v])
        for system, colour in (("model", "#1565c0"), ("cascade", "#ef6c00")):
            _cdf(ax, values[system], system, colour, x_end)
        ax.axvline(goal, color="grey", linestyle=":", label=goal_label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds")
        ax.set_ylabel("fraction")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, x_end)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_timeline(call: dict, path: Path) -> Path:
    plt = _plt()
    ann = call["annotations"]
    dur = call["duration_s"]
    rows = ["caller", "model floor", "model speech"] + (["cascade speech"] if "cascade" in call else [])
    y = {name: len(rows) - 1 - i for i, name in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(min(40.0, max(8.0, dur / 2.5)), 0.6 * len(rows) + 1.2))

    def bars(row: str, intervals, colour: str, h: float = 0.6, **kw) -> None:
        if intervals:
            ax.broken_barh([(s, e - s) for s, e in intervals], (y[row] - h / 2, h), facecolors=colour, **kw)

    bars("caller", ann["caller_speech"], "#616161")
    bars("caller", ann["pauses"], "none", edgecolor="#616161", hatch="///")
    bars("caller", ann["backchannels"], "#ff8f00")
    if ann["echoes"]:  # a thin strip under the caller's row
        ax.broken_barh(
            [(s, e - s) for s, e in ann["echoes"]], (y["caller"] - 0.45, 0.12), facecolors="#9575cd"
        )
    model = call["model"]
    start = model["floor_start_s"]
    for floor, colour in FLOOR_COLOURS.items():
        bars(
            "model floor",
            [(start + 0.2 * k, start + 0.2 * (k + 1)) for k, f in enumerate(model["floor"]) if f == floor],
            colour,
        )
    bars("model speech", model["speech"], "#1565c0")
    for tc in model["tool_calls"]:
        ax.plot([tc["t"]], [y["model speech"] + 0.42], marker="v", color="black", markersize=7)
        ax.annotate(tc["name"], (tc["t"], y["model speech"] + 0.45), fontsize=7, rotation=20)
    if "cascade" in call:
        bars("cascade speech", call["cascade"]["speech"], "#ef6c00")
        for tc in call["cascade"]["tool_calls"]:
            ax.plot([tc["t"]], [y["cascade speech"] + 0.42], marker="v", color="black", markersize=7)
    for t in ann["turn_ends"]:
        ax.axvline(t, color="black", linestyle="--", linewidth=0.8)
    for t in ann["barge_ins"]:
        ax.axvline(t, color="#c62828", linewidth=1.2)
    ax.set_yticks([y[r] for r in rows], rows)
    ax.set_ylim(-0.7, len(rows) - 0.2)
    ax.set_xlim(0, dur + 0.4)
    ax.set_xlabel("seconds (call clock)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in FLOOR_COLOURS.values()]
    ax.legend(handles, [f"floor {f}" for f in FLOOR_COLOURS], fontsize=7, loc="upper right", ncol=3)
    ax.set_title(
        f"{call['name']} ({call['agent']}): dashed = caller turn end, red = barge-in, "
        "hatched = mid-turn pause, orange = caller backchannel, violet = echo",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- HTML


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.3f}"
    return html.escape(str(v))


def _text(text: str) -> str:
    """Model text for HTML: escaped, control characters (an untrained model writes any byte)
    shown as U+FFFD."""
    return html.escape("".join(ch if ch.isprintable() or ch == " " else "\ufffd" for ch in text))


def _met_cell(met: bool | None) -> str:
    if met is None:
        return '<td class="na">n/a</td>'
    return '<td class="met">met</td>' if met else '<td class="miss">not met</td>'


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.met{background:#e8f5e9;color:#1b5e20}
.miss{background:#ffebee;color:#b71c1c}.na{color:#888}img{max-width:100%;border:1px solid #eee}
details{margin:0.3em 0 1.5em}code{font-size:12px}"""


def _summary_table(summary: dict) -> str:
    systems = [s for s in ("model", "cascade") if s in summary]
    head = (
        "".join(f"<th>{s}</th>" for s in systems)
        + "<th>goal</th>"
        + "".join(f"<th>{s}</th>" for s in systems)
    )
    out = [f"<table><tr><th>metric</th>{head}</tr>"]
    for row in goals(summary):
        cells = "".join(f"<td>{_fmt(row[s])}</td>" for s in systems)
        goal = html.escape(row["goal"])
        out.append(
            f"<tr><td>{html.escape(row['metric'])}</td>{cells}<td>{goal}</td>"
            + "".join(_met_cell(row[f"{s}_met"]) for s in systems)
            + "</tr>"
        )
    for label, key in OTHER_ROWS:
        cells = ""
        for s in systems:
            v = (
                " / ".join(_fmt(summary[s].get(k)) for k in key)
                if isinstance(key, tuple)
                else _fmt(summary[s].get(key))
            )
            cells += f"<td>{v}</td>"
        out.append(
            f"<tr><td>{html.escape(label)}</td>{cells}<td></td>" + "<td></td>" * len(systems) + "</tr>"
        )
    if summary.get("model", {}).get("background_calls"):
        for label, key in BACKGROUND_ROWS:
            value = summary["model"]
            cell = (
                " / ".join(_fmt(value.get(k)) for k in key[:2]) + f" (n={_fmt(value.get(key[2]))})"
                if isinstance(key, tuple)
                else _fmt(value.get(key))
            )
            out.append(
                f"<tr><td>{html.escape(label)}</td><td>{cell}</td>"
                + "<td></td>" * (2 * len(systems))
                + "</tr>"
            )
    ref = summary.get("reference", {})
    out.append(
        f"<tr><td>Reference WER (scripted agent TTS, {ref.get('words', 0)} words)</td>"
        f"<td>{_fmt(ref.get('wer'))}</td>" + "<td></td>" * (2 * len(systems)) + "</tr>"
    )
    out.append("</table>")
    return "\n".join(out)


def _calls_table(results: dict) -> str:
    cols = (
        "call",
        "agent",
        "s",
        "turns taken",
        "latency p50",
        "pauses taken over",
        "barge-in stops (s)",
        "false stops bc/echo",
        "tools correct/expected/extra",
        "chrF",
        "interjections played",
        "missing frames",
        "ended",
    )
    out = ["<table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for c in results["calls"]:
        m = c["model"]["metrics"]
        lat = sorted(x for x in m["turns"] if x is not None)
        p50 = lat[len(lat) // 2] if lat else None
        t = m["tools"]
        ended = c["model"]["session"].get("ended") or {}
        stops = (
            f"{sum(m['backchannel_stops'])}/{len(m['backchannel_stops'])}, "
            + f"{sum(m['echo_stops'])}/{len(m['echo_stops'])}"
        )
        ij = c["model"]["session"].get("interjections", [])
        played = f"{sum(x['onset_s'] is not None for x in ij)}/{len(ij)}"
        cells = (
            f'<a href="#{html.escape(c["name"])}">{html.escape(c["name"])}</a>',
            html.escape(c["agent"]),
            _fmt(c["duration_s"]),
            f"{len(lat)}/{len(m['turns'])}",
            _fmt(p50),
            f"{sum(m['pauses'])}/{len(m['pauses'])}",
            ", ".join(f"{x:.2f}" for x in m["barge_in_latencies"]),
            stops,
            f"{t['correct']}/{t['expected']}/{t['extra']}",
            _fmt(m["chrf"]),
            played,
            _fmt(c["model"]["session"].get("missing_frames")),
            html.escape(str(ended.get("by", ""))),
        )
        out.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


ABOUT = (
    "<p>Metrics follow Full-Duplex-Bench v1/v1.5; their exact rules are in "
    "<code>evaluation/metrics.py</code>. Times are on the call clock: micro-turn k of the "
    "model reads caller frame k and its audio sounds one micro-turn later.</p>"
)


def _page_start(results: dict, title: str, heading: str) -> list[str]:
    """A report's head, heading, its run's meta and its notes."""
    meta = "<br>".join(
        f"<b>{html.escape(str(k))}</b>: "
        + html.escape(json.dumps(v) if isinstance(v, (dict, list)) else str(v))
        for k, v in results.get("meta", {}).items()
    )
    head = f"<head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head>"
    parts = [f"<!doctype html><html>{head}<body><h1>{heading}</h1><p>{meta}</p>"]
    if results.get("notes"):
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in results["notes"]) + "</ul>")
    return parts


def render_html(results: dict) -> str:
    parts = _page_start(results, "Parley evaluation", "Parley evaluation")
    parts += ["<h2>Summary against the goals</h2>", _summary_table(results["summary"]), ABOUT]
    for agent, summary in results["summary"].get("by_agent", {}).items():
        parts += [f"<h3>{html.escape(agent)} calls only</h3>", _summary_table(summary)]
    parts += [
        "<h2>Latency</h2>",
        '<img src="latency_cdf.png" alt="latency CDFs">',
        "<h2>Calls</h2>",
        _calls_table(results),
        "<h2>Timelines</h2>",
    ]
    for c in results["calls"]:
        name = html.escape(c["name"])
        parts.append(f'<h3 id="{name}">{name}</h3><img src="{html.escape(c["timeline_png"])}" alt="{name}">')
        text = _text(c["model"]["text"]) or "<i>(no text)</i>"
        asr = c["model"].get("asr_text")
        parts.append(
            f"<details><summary>model text</summary><p>{text}</p>"
            + (f"<p><b>recognised:</b> {_text(asr)}</p>" if asr else "")
            + "</details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results: dict, out_dir: str | Path) -> Path:
    """results.json, latency_cdf.png, timelines/*.png and report.html in `out_dir`; returns the HTML path."""
    out = Path(out_dir)
    (out / "timelines").mkdir(parents=True, exist_ok=True)
    results["goals"] = goals(results["summary"])
    for call in results["calls"]:
        call["timeline_png"] = f"timelines/{call['name']}.png"
        plot_timeline(call, out / call["timeline_png"])
    plot_latency_cdfs(results, out / "latency_cdf.png")
    (out / "results.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False, default=_json_default) + "\n"
    )
    path = out / "report.html"
    path.write_text(render_html(results))
    return path


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ------------------------------------------------------------------------------------ bridged calls


DIRECTION_LABELS = {"a_to_b": "A -> B (A speaks, B hears the interpreter)", "b_to_a": "B -> A"}
BRIDGED_ROWS = (  # (label, summary key) beside the goals
    ("chrF of the interpreter's own text", "text_chrf"),
    (
        "chrF of the references in the interpreter's trained voice (the recogniser's ceiling)",
        "reference_chrf",
    ),
    ("Ear-voice span p90 (s)", "ear_voice_span_p90"),
    ("Source phrases / with no translation found", ("n_phrases", "n_phrases_missed")),
    ("Share of the listener's speech with the interpreter talking over it", "overlap_share"),
    ("Listener speech (s)", "listener_speech_s"),
)


def plot_bridged_timeline(call: dict, path: Path) -> Path:
    """Per party: what it said, and what it heard (the interpreter of the other party)."""
    plt = _plt()
    rows = ["A says", "A hears", "B says", "B hears"]
    y = {name: len(rows) - 1 - i for i, name in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(min(40.0, max(8.0, call["duration_s"] / 2.5)), 3.6))
    spans = {
        "A says": call["speech"]["a"],
        "B says": call["speech"]["b"],
        "A hears": call["b_to_a"]["heard_speech"],
        "B hears": call["a_to_b"]["heard_speech"],
    }
    for row, intervals in spans.items():
        colour = "#616161" if row.endswith("says") else "#1565c0"
        if intervals:
            ax.broken_barh([(s, e - s) for s, e in intervals], (y[row] - 0.3, 0.6), facecolors=colour)
    ax.set_yticks([y[r] for r in rows], rows)
    ax.set_xlim(0, call["duration_s"] + 0.4)
    ax.set_xlabel("seconds (call clock)")
    ax.set_title(f"{call['name']}: grey = a party speaking, blue = the interpreter it hears", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _bridged_summary_table(results: dict) -> str:
    directions = list(results["summary"])
    head = "".join(f"<th>{html.escape(DIRECTION_LABELS.get(d, d))}</th><th></th>" for d in directions)
    out = [f"<table><tr><th>metric</th>{head}<th>goal</th></tr>"]
    out.append(
        "<tr><td>interpreter</td>"
        + "".join(f"<td>{_fmt(results['summary'][d]['interpreter'])}</td><td></td>" for d in directions)
        + "<td></td></tr>"
    )
    for i, goal in enumerate(results["goals"][directions[0]]):
        cells = "".join(
            f"<td>{_fmt(results['goals'][d][i]['value'])}</td>" + _met_cell(results["goals"][d][i]["met"])
            for d in directions
        )
        out.append(
            f"<tr><td>{html.escape(goal['metric'])}</td>{cells}<td>{html.escape(goal['goal'])}</td></tr>"
        )
    for label, key in BRIDGED_ROWS:
        cells = ""
        for d in directions:
            s = results["summary"][d]
            v = " / ".join(_fmt(s.get(k)) for k in key) if isinstance(key, tuple) else _fmt(s.get(key))
            cells += f"<td>{v}</td><td></td>"
        out.append(f"<tr><td>{html.escape(label)}</td>{cells}<td></td></tr>")
    out.append("</table>")
    return "\n".join(out)


def render_bridged_html(results: dict) -> str:
    parts = _page_start(results, "Parley bridged evaluation", "Parley evaluation: bridged calls")
    parts += ["<h2>Per direction, against the goals</h2>", _bridged_summary_table(results)]
    parts.append(
        "<p>Rules: <code>evaluation/bridge_metrics.py</code>. chrF: a recogniser of the listener's "
        "language on what the listener heard, against the reference translations of the speaker's "
        "phrases; ear-voice span: a source phrase's onset to the listener's next heard speech onset, "
        "matched in order (none within 10 s: missed).</p><h2>Calls</h2>"
    )
    for c in results["calls"]:
        name = html.escape(c["name"])
        parts.append(f'<h3 id="{name}">{name}</h3><img src="{html.escape(c["timeline_png"])}" alt="{name}">')
        for d in ("a_to_b", "b_to_a"):
            x = c[d]
            label = f"{DIRECTION_LABELS.get(d, d)}: {x['interpreter']}"
            parts.append(
                f"<details><summary>{html.escape(label)}, "
                f"chrF {_fmt(x['chrf'])}, text chrF {_fmt(x['text_chrf'])}</summary>"
                f"<p><b>references:</b> {_text(' | '.join(x['references']))}</p>"
                f"<p><b>heard (recognised):</b> {_text(x['heard_text'] or '')}</p>"
                f"<p><b>interpreter text:</b> {_text(x['interpreter_text'])}</p>"
                f"<p><b>ear-voice spans (s):</b> {_fmt(x['ear_voice_spans'])}</p></details>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_bridged_report(results: dict, out_dir: str | Path) -> Path:
    """results.json, timelines/*.png and report.html of a bridged evaluation in `out_dir`."""
    out = Path(out_dir)
    (out / "timelines").mkdir(parents=True, exist_ok=True)
    for call in results["calls"]:
        call["timeline_png"] = f"timelines/{call['name']}.png"
        plot_bridged_timeline(call, out / call["timeline_png"])
    (out / "results.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False, default=_json_default) + "\n"
    )
    path = out / "report.html"
    path.write_text(render_bridged_html(results))
    return path
