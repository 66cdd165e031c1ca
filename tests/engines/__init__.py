"""Tests of rlmagent.engines: registry, wire engines over a loopback server, local engine."""
