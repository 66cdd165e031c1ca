"""The servers: ``rlm serve`` (an OpenAI-compatible chat API) and ``rlm mcp`` (MCP tools).

Nothing is imported here: the web stack (Starlette, uvicorn) and the MCP SDK are optional
extras (``rlmagent[serve]``, ``rlmagent[mcp]``), loaded only by the modules that need
them. See docs/SERVE.md and docs/MCP.md.
"""
