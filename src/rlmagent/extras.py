"""How to install an optional extra, said the way this copy of rlmagent was installed.

From a package index, ``pip install "rlmagent[openai]"``; from a clone (``pip install .``
or ``-e .``, which pip records in the distribution's ``direct_url.json``), the same
command in that clone: ``pip install ".[openai]"``, since the name alone may be on no
index the user can reach.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from urllib.parse import unquote, urlparse


@functools.cache
def _installed_from() -> tuple[Path, bool] | None:
    """The local directory this distribution was installed from and whether it is
    editable, or None (an index, or unknown)."""
    from importlib import metadata

    try:
        raw = metadata.distribution("rlmagent").read_text("direct_url.json")
        data = json.loads(raw) if raw else None
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return None
    if not isinstance(data, dict) or not str(data.get("url", "")).startswith("file://"):
        return None
    info = data.get("dir_info")
    if not isinstance(info, dict):  # a local wheel or archive, not a directory
        return None
    return Path(unquote(urlparse(data["url"]).path)), bool(info.get("editable"))


def install_hint(extra: str) -> str:
    """The command that adds ``extra`` (``"openai"``, ``"bench"``...) to this install."""
    source = _installed_from()
    if source is None:
        return f'pip install "rlmagent[{extra}]"'
    directory, editable = source
    flag = "-e " if editable else ""
    return f'pip install {flag}".[{extra}]" (in {directory}, the clone rlmagent came from)'
