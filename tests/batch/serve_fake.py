"""A scripted chat server in a process of its own (a test kills it to see failover):
prints its base URL, serves until killed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

from fakes import server  # noqa: E402

if __name__ == "__main__":
    subs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    with server(subs=subs, delay=delay) as srv:
        print(srv.url, flush=True)
        threading.Event().wait()
