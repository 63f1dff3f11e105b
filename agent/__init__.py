"""The Doorward device agent: camera sources, recorder, store, CLI. See agent.app for the
composition root.
"""

__version__ = "0.1.0"
