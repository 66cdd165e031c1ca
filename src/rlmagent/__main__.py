"""``python -m rlmagent`` is the ``rlm`` command."""

from rlmagent.cli import run_main

run_main()
