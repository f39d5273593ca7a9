"""Benchmarks: `python -m bench.realtime` drives HotSpot and a bare python-socketio server."""
