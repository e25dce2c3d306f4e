"""workspace: governed tool execution for coding agents, served by Ray Serve."""

__version__ = "0.1.0"
