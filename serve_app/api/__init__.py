"""The HTTP layer: a FastAPI app built by `create_app` around a session-manager port."""
