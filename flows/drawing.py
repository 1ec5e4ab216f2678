"""Server-drawn SVG for the admin (docs/admin.md): an execution's timeline, a flow's task tree and a
worker group's load over the last hour. Plain data in, an SVG string out, no JavaScript. Every text
comes from users (task ids, worker names, expressions): it goes through `format_svg`, whose
escaping (Django's) is valid XML too."""
import math
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

STATE_COLOURS = {
    "CREATED": "#9e9e9e", "RUNNING": "#1e88e5", "SUCCESS": "#43a047", "WARNING": "#fb8c00", "FAILED": "#e53935",
    "KILLING": "#ab47bc", "KILLED": "#6a1b9a", "CANCELLED": "#616161", "SKIPPED": "#cfd8dc", "RETRYING": "#fdd835",
    "RETRIED": "#fbc02d", "QUEUED": "#bdbdbd",
}


def format_svg(template: str, *args) -> SafeString:
    """`template.format(*args)`, text arguments escaped (numbers keep their format specs)."""
    return mark_safe(template.format(*(
        arg if isinstance(arg, (int, float)) else conditional_escape(arg) for arg in args)))


FONT = "font-family: sans-serif; font-size: 12px; max-width: 100%; height: auto"
ROW = 24
BAR_ROW = 32  # two lines of label
LABEL_WIDTH = 320
WIDTH = 960


def _svg(width: float, height: float, label: str, parts: list) -> SafeString:
    return format_svg(
        '<svg xmlns="http://www.w3.org/2000/svg" class="drawing" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}" style="{}">{}</svg>',
        width, height, width, height, label, FONT, mark_safe("".join(parts)),
    )


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _ticks(span: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) from 0 up to `span`."""
    raw = max(span, 1e-3) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1) if whole else step
    return [step * index for index in range(int(span / step + 1e-9) + 1)]


# --- an execution's timeline -------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str  # the task id (and its loop value)
    detail: str  # group and worker
    state: str
    start: datetime
    end: datetime
    waited_from: datetime | None = None  # created, when it waited for a worker before `start`


def timeline_svg(bars: list[Bar], *, origin: datetime, until: datetime) -> SafeString:
    """One row per task run: its label and detail on the left, its bar at its time from `origin`."""
    span = max((until - origin).total_seconds(), 0.001)
    plot = WIDTH - LABEL_WIDTH - 20
    top = 28
    scale = plot / span

    def x(moment: datetime) -> float:
        return LABEL_WIDTH + max(0.0, (moment - origin).total_seconds()) * scale

    parts = []
    for tick in _ticks(span):
        tick_x = LABEL_WIDTH + tick * scale
        parts.append(format_svg(
            '<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="#e0e0e0"/>'
            '<text x="{0:.1f}" y="{3}" text-anchor="middle" fill="#666">{4}</text>',
            tick_x, top - 6, top + BAR_ROW * len(bars), top - 10, f"+{tick:g} s"))
    for index, bar in enumerate(bars):
        y = top + index * BAR_ROW
        start_x = x(bar.start)
        width = max(x(bar.end) - start_x, 2.0)
        seconds = (bar.end - bar.start).total_seconds()
        if bar.waited_from is not None and bar.waited_from < bar.start:
            parts.append(format_svg(
                '<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="none" stroke="#9e9e9e" '
                'stroke-dasharray="3 2"><title>waiting for a worker</title></rect>',
                x(bar.waited_from), y + 6, max(start_x - x(bar.waited_from), 1.0), BAR_ROW - 12))
        parts.append(format_svg(
            '<g class="bar" data-state="{0}">'
            '<text x="4" y="{1}" font-weight="bold">{2}</text><text x="4" y="{3}" fill="#666" font-size="10">{4}</text>'
            '<rect x="{5:.1f}" y="{6}" width="{7:.1f}" height="{8}" rx="2" fill="{9}">'
            '<title>{2}: {0}, {10} ({4})</title></rect></g>',
            bar.state, y + 13, _clip(bar.label, 44), y + 26, _clip(bar.detail, 52), start_x, y + 3, width, BAR_ROW - 6,
            STATE_COLOURS.get(bar.state, "#9e9e9e"), duration_text(seconds)))
    return _svg(WIDTH, top + BAR_ROW * len(bars) + 8, "timeline of the execution's task runs", parts)


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"


# --- a flow's task tree ------------------------------------------------------------------------


@dataclass
class Node:
    """A task (with its type's short name and, for a runnable, its resolved group) or a branch
    label (`then`, `case x`, `errors`) whose children are the branch's tasks."""

    text: str
    kind: str = ""
    group: str = ""
    branch: bool = False
    children: list["Node"] = field(default_factory=list)


def tree_svg(roots: list[Node]) -> SafeString:
    """One row per node, indented by depth, each child joined to its parent by an elbow line."""
    rows: list[tuple[Node, int, int | None]] = []  # (node, depth, parent row)

    def place(nodes: list[Node], depth: int, parent: int | None) -> None:
        for node in nodes:
            rows.append((node, depth, parent))
            place(node.children, depth + 1, len(rows) - 1)

    place(roots, 0, None)
    indent, box_height = 22, ROW - 6
    parts = []
    for index, (node, depth, parent) in enumerate(rows):
        y, x = 6 + index * ROW, 6 + depth * indent
        if parent is not None:
            parent_x = 6 + rows[parent][1] * indent + 8
            parts.append(format_svg(
                '<path d="M{0} {1} V{2} H{3}" fill="none" stroke="#9e9e9e"/>',
                parent_x, 6 + parent * ROW + box_height, y + box_height / 2, x))
        if node.branch:
            parts.append(format_svg('<text x="{}" y="{}" font-style="italic" fill="#555">{}</text>',
                                     x + 2, y + 13, node.text))
            continue
        label = format_svg('<tspan font-weight="bold">{}</tspan> <tspan fill="#666">{}</tspan>', node.text, node.kind)
        group = format_svg(' <tspan fill="#1565c0">→ {}</tspan>', node.group) if node.group else ""
        width = WIDTH - x - 10
        parts.append(format_svg(
            '<g class="task"><rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}" stroke="#b0bec5"/>'
            '<text x="{}" y="{}">{}{}</text></g>',
            x, y, width, box_height, "#fff" if node.group else "#eceff1", x + 6, y + 13, label, group))
    return _svg(WIDTH, 12 + ROW * len(rows), "task tree of the flow", parts)


# --- a worker group's load --------------------------------------------------------------------


def load_svg(points: list[tuple[float, int, int, int]], *, minutes: int = 60) -> SafeString:
    """`points`: (minutes before now, waiting, running, alive), drawn as three lines over the last
    `minutes`, now at the right edge."""
    left, top, plot_width, plot_height = 48, 16, WIDTH - 48 - 150, 180
    highest = max([1] + [max(waiting, running, alive) for _, waiting, running, alive in points])
    y_ticks = _ticks(highest, 4, whole=True)
    if y_ticks[-1] < highest:  # the scale ends on a tick above the highest value
        y_ticks.append(y_ticks[-1] + y_ticks[1])
    top_value = y_ticks[-1]

    def x(ago: float) -> float:
        return left + plot_width * (1 - min(max(ago, 0.0), minutes) / minutes)

    def y(value: float) -> float:
        return top + plot_height * (1 - value / top_value)

    parts = []
    for value in y_ticks:
        parts.append(format_svg(
            '<line x1="{0}" y1="{1:.1f}" x2="{2}" y2="{1:.1f}" stroke="#e0e0e0"/>'
            '<text x="{3}" y="{4:.1f}" text-anchor="end" fill="#666">{5}</text>',
            left, y(value), left + plot_width, left - 6, y(value) + 4, f"{value:g}"))
    for ago in range(minutes, -1, -10):
        parts.append(format_svg('<text x="{:.1f}" y="{}" text-anchor="middle" fill="#666">{}</text>',
                                 x(ago), top + plot_height + 16, f"-{ago} min" if ago else "now"))
    series = (("waiting", 1, "#fb8c00"), ("running", 2, "#1e88e5"), ("alive workers", 3, "#43a047"))
    for number, (name, column, colour) in enumerate(series):
        coordinates = " ".join(f"{x(point[0]):.1f},{y(point[column]):.1f}" for point in points)
        if coordinates:
            parts.append(format_svg(
                '<polyline class="series" data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="2"{}/>',
                name, coordinates, colour, mark_safe(' stroke-dasharray="4 3"') if column == 3 else ""))
            # A dot per sample: a lone sample (the first minute) shows too.
            parts.extend(format_svg('<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>', x(point[0]), y(point[column]),
                                    colour) for point in points)
        legend_y = top + 10 + number * 18
        parts.append(format_svg(
            '<rect x="{}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{}">{}</text>',
            left + plot_width + 16, legend_y - 4, colour, left + plot_width + 36, legend_y + 1, name))
    if not points:
        parts.append(format_svg('<text x="{}" y="{}" text-anchor="middle" fill="#666">{}</text>',
                                 left + plot_width / 2, top + plot_height / 2,
                                 "no samples in the last hour (the reconciler records one a minute)"))
    return _svg(WIDTH, top + plot_height + 28, "waiting and running task runs over the last hour", parts)
