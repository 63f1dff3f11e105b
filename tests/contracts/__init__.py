"""Contract tests: the same test functions run against an in-memory twin and the real server.

Each module defines its tests over a ``rig`` fixture; tests/unit/ runs them on the twin,
tests/integration/ on the twin and on the real server side by side.
"""
