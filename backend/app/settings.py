"""Configuration, only from environment variables with safe defaults (pydantic-settings)."""

from __future__ import annotations

import socket
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import __version__
from app.tokens import load_tokens

DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    app_version: str = __version__
    # Which replica answered: the container's hostname unless set explicitly.
    replica_id: str = Field(default_factory=socket.gethostname)
    app_state_dir: Path = Path("/run/app")
    log_level: str = "INFO"

    # Database: DATABASE_URL wins; otherwise DATABASE_HOST/PORT/USER/NAME/PASSWORD(_FILE), each
    # also accepted under the postgres image's own name (POSTGRES_USER, ...).
    database_url: str | None = None
    database_host: str = Field(
        "postgres", validation_alias=AliasChoices("database_host", "postgres_host")
    )
    database_port: int = Field(
        5432, validation_alias=AliasChoices("database_port", "postgres_port")
    )
    database_user: str = Field(
        "app", validation_alias=AliasChoices("database_user", "postgres_user")
    )
    database_password: str = Field(
        "", validation_alias=AliasChoices("database_password", "postgres_password")
    )
    database_password_file: Path | None = Field(
        None, validation_alias=AliasChoices("database_password_file", "postgres_password_file")
    )
    database_name: str = Field("app", validation_alias=AliasChoices("database_name", "postgres_db"))
    # libpq's sslmode for a DSN built from the parts above (DATABASE_URL carries its own). Unset:
    # asyncpg's default, `prefer`, which on a server without TLS costs every new connection an
    # SSL context (the CA bundle read) and a refused SSLRequest: with the rest of asyncpg's
    # connect, 15 % of a worker's py-spy samples while its pool reconnected in an overload.
    # The bundled stack's server has no TLS and sits on the internal network: compose sets
    # `disable`.
    database_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = None
    db_pool_min: int = 0  # 0: the app starts (and answers /readyz 503) while the DB is down
    # Per worker. 10 made the reconnect storm after a PostgreSQL restart long enough for 504s in
    # a CI run (every worker opening all of them at once on two cores); with 5 and a 1 s
    # connection deadline, chat turns queued on a conversation's row lock held all five on a
    # busy host and others missed it (503s): 5 with the 1.25 s deadline.
    db_pool_max: int = 5
    # Well under Traefik's 1.5 s pinned bound, so that a database outage is answered 503 +
    # Retry-After by the API, not 504 by Traefik: a stopped PostgreSQL's address leaves the
    # bridge and a connect to it hangs (no RST) until this timeout. A failed connect ends the
    # acquire at once; the acquire timeout bounds a wait for a busy pool.
    db_connect_timeout: float = 0.5
    db_command_timeout: float = 5.0
    db_acquire_timeout: float = 1.0
    # A request is done with the database within this many seconds of arriving (connection and
    # statements), or answers 503 + Retry-After: the API's answer then starts before Traefik's
    # 1.5 s pinned bound. Bounding only the connection let a chat turn's statements run past it
    # during the reconnect after a PostgreSQL restart on a busy host (a 504 at 2.1 s).
    db_request_deadline_s: float = Field(1.25, gt=0)
    # Once a connection is refused or lost, requests answer 503 at once and a background probe
    # tries a fresh session this often; its first success ends the outage (app/outage.py).
    db_outage_probe_interval_s: float = Field(0.2, gt=0)
    # A pooled connection idle this long gets one `SELECT 1` before a request uses it: a
    # replica cut off from the network past PostgreSQL's keepalives (11 s) keeps sessions the
    # server has silently dropped (app/db.py). Under load connections are never this idle.
    db_check_idle_after_s: float = Field(2.0, ge=0)
    # PostgreSQL ends a session of ours that sits inside a transaction this long waiting for its
    # next command: a replica frozen or cut off mid-write would otherwise hold its locks (the
    # Idempotency-Key row) until its TCP connection dies, and the retry of that very write on
    # another replica would wait on them. No handler of ours pauses inside a transaction.
    # The retry of a chat turn frozen mid-write waits for this, after its 1.5 s pinned attempt:
    # with 2000 the slowest of those answered at 3.04 s in 1 of 4 pause runs, with 1500 at
    # 2.37 s at most in 4 (1000 was reached once by a CPU-starved worker between statements).
    db_idle_in_transaction_timeout_ms: int = Field(1500, ge=0)
    # Simulated model latency of POST /api/v1/chat (a real chat backend waits on a model).
    assistant_latency_ms: int = Field(0, ge=0, le=60000)
    ready_db_timeout: float = 1.0
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR

    api_tokens: str = ""
    api_tokens_file: str | None = None

    # Other origins allowed to call the API from a browser (comma-separated, e.g.
    # "https://app.example.com"). Empty: no CORS headers at all. The bundled page needs none:
    # Traefik serves it and the API on one origin.
    cors_allow_origins: str = ""

    max_body_bytes: int = 65536
    max_message_chars: int = 5000  # x12 (JSON escapes) fits MAX_BODY_BYTES
    max_title_chars: int = 200
    work_max_cpu_ms: int = 2000
    retry_after_seconds: int = 1
    idempotency_ttl_hours: float = 24.0
    idempotency_purge_interval_s: float = 600.0

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allow_origins.split(",") if o.strip()]

    @cached_property
    def tokens(self) -> list[str]:
        return load_tokens(self.api_tokens, self.api_tokens_file)

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        password = self.database_password
        if self.database_password_file is not None:
            password = self.database_password_file.read_text().strip()
        auth = quote(self.database_user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        dsn = (
            f"postgresql://{auth}@{self.database_host}:{self.database_port}/"
            f"{quote(self.database_name, safe='')}"
        )
        return f"{dsn}?sslmode={self.database_sslmode}" if self.database_sslmode else dsn


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
