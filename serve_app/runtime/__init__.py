"""Workspace runtimes: the only way a tool touches a workspace."""
