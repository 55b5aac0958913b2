"""compose-ha backend: the chat API replica.

Kept import-free on purpose: the gunicorn master imports `app.state` and must not pull in
prometheus_client or asyncpg before the worker environment is set up.
"""

__version__ = "0.1.0"
