"""The domain: sessions, invocations, catalog and policy.

Imports no Ray, FastAPI or store client.
"""
