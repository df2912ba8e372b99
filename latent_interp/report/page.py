"""The page: sections rendered into ``templates/page.html.j2`` with the CSS, the scripts, plotly.js (inlined once:
the page opens with no network) and the JSON payload."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Section:
    """One section of the page: its anchor, title, template (under templates/sections/) and the template's
    variables; ``parts`` are (anchor, title) of its subsections, listed in the table of contents."""
    id: str
    title: str
    template: str
    context: dict = field(default_factory=dict)
    parts: list[tuple[str, str]] = field(default_factory=list)


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _finite(value):
    """``value`` with every NaN or infinite float replaced by None (JSON has no NaN: the page shows "n/a")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def script_json(payload: dict) -> str:
    """JSON safe inside a <script> element (no "</" can end it early), numpy scalars as numbers, NaN as null."""
    text = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False,
                      default=lambda value: _finite(value.item()))  # numpy scalars
    return text.replace("</", "<\\/")


def read_payload(page_html: str) -> dict:
    """The JSON payload of a written page (what its scripts read): for tests and benchmarks."""
    found = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page_html, re.S)
    if found is None:
        raise ValueError("not a latent-interp report: it has no <script id=\"report-data\">")
    return json.loads(found.group(1))


def render_section(section: Section, env: jinja2.Environment | None = None) -> str:
    """The HTML of one section's body (its template with its variables)."""
    env = env or environment()
    return env.get_template(f"sections/{section.template}").render(section=section, **section.context)


def render(sections: list[Section], payload: dict, title: str) -> str:
    from plotly.offline import get_plotlyjs  # ~5 MB of JavaScript: read only when a page is written

    env = environment()
    bodies = [render_section(section, env) for section in sections]
    return env.get_template("page.html.j2").render(
        title=title, sections=list(zip(sections, bodies)), payload=script_json(payload),
        css=(TEMPLATES / "report.css").read_text(), script=(TEMPLATES / "report.js").read_text(),
        plotly_js=get_plotlyjs())
