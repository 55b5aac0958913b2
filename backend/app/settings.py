"""Configuration, only from environment variables with safe defaults (pydantic-settings)."""

from __future__ import annotations

import socket
from functools import cached_property, lru_cache
from pathlib import Path
from urllib.parse import quote

from pydantic import Field
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

    # Database: DATABASE_URL wins; otherwise built from the POSTGRES_* variables that the
    # postgres image also reads, so compose can share one env block.
    database_url: str | None = None
    postgres_host: str = "postgres"
    postgres_port: int = 5432
    postgres_user: str = "app"
    postgres_password: str = ""
    postgres_password_file: Path | None = None
    postgres_db: str = "app"
    db_pool_min: int = 0  # 0: the app starts (and answers /readyz 503) while the DB is down
    db_pool_max: int = 10
    db_connect_timeout: float = 2.0
    db_command_timeout: float = 5.0
    db_acquire_timeout: float = 2.0
    ready_db_timeout: float = 1.0
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR

    api_tokens: str = ""
    api_tokens_file: str | None = None

    max_body_bytes: int = 65536
    max_message_chars: int = 8000
    max_title_chars: int = 200
    page_size_default: int = 50
    page_size_max: int = 200
    work_max_cpu_ms: int = 2000
    retry_after_seconds: int = 1

    @cached_property
    def tokens(self) -> list[str]:
        return load_tokens(self.api_tokens, self.api_tokens_file)

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        password = self.postgres_password
        if self.postgres_password_file is not None:
            password = self.postgres_password_file.read_text().strip()
        auth = quote(self.postgres_user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        return (
            f"postgresql://{auth}@{self.postgres_host}:{self.postgres_port}/"
            f"{quote(self.postgres_db, safe='')}"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
