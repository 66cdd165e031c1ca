"""Sandboxes that run model-written code. See each class for what it isolates."""

from rlmagent.sandbox.base import FunctionSpec, Limits, Sandbox, Session
from rlmagent.sandbox.inprocess import InProcessSandbox
from rlmagent.sandbox.subprocess import IsolationWarning, SubprocessSandbox

__all__ = [
    "FunctionSpec",
    "InProcessSandbox",
    "IsolationWarning",
    "Limits",
    "Sandbox",
    "Session",
    "SubprocessSandbox",
]
