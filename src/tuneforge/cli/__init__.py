"""The `tuneforge` command line: remote client commands, local runs, servers and the demo. May import everything."""

from tuneforge.cli.app import app

__all__ = ["app"]
