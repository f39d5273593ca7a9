"""Realtime delivery: the cross-node bus, socket registry, revocations and rate limits."""
