"""Adapters: implementations of the domain's ports (stores, workspaces, artifact storage)."""
