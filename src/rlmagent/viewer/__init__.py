"""A self-contained HTML page for one trajectory.

:func:`render_html` turns a :class:`~rlmagent.trace.Trajectory` into one HTML document
with the run embedded as JSON and the page's own script and styles inline (package data
in ``viewer/static``). Nothing is fetched at view time: the page's Content-Security-Policy
forbids every network request. :func:`write_html` reads a trace file and writes the page.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from rlmagent.errors import UsageError
from rlmagent.trace import Trajectory
from rlmagent.viewer.payload import build_payload

__all__ = ["build_payload", "embed_json", "render_html", "write_html"]

_SLOT = re.compile(r"\{\{(\w+)\}\}")


def _static(name: str) -> str:
    return resources.files("rlmagent.viewer").joinpath("static", name).read_text("utf-8")


def embed_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``.

    ``<`` only ever appears inside JSON strings, where ``\\u003c`` means the same.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_html(traj: Trajectory, *, title: str | None = None) -> str:
    """The whole page for ``traj``, as a string."""
    from rlmagent import __version__

    payload = build_payload(traj, title=title)
    slots = {
        "title": html.escape("RLM · " + payload["title"][:120]),
        "version": html.escape(__version__),
        "css": _static("viewer.css"),
        "js": _static("viewer.js"),
        "data": embed_json(payload),
    }
    # one pass, so that text inside the data can never be taken for a slot
    return _SLOT.sub(lambda m: slots[m.group(1)], _static("template.html"))


def default_output(trace: str | Path) -> Path:
    """Where ``rlm view`` writes the page for ``trace`` by default: beside it, ``.html``."""
    return Path(trace).with_suffix(".html")


def write_html(
    trace: str | Path | Trajectory, out: str | Path | None = None, *, title: str | None = None
) -> Path:
    """Write the page for a trace file (or a loaded trajectory) to ``out``; return its path."""
    traj = trace if isinstance(trace, Trajectory) else Trajectory.load(trace)
    if out is None:
        if traj.path is None:
            raise UsageError("write_html needs `out` for a trajectory that has no file")
        out = default_output(traj.path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(traj, title=title), encoding="utf-8")
    return out
