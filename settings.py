"""Configuration from the environment and `.env` (SPEC §7); only bot.py builds it."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The weekly brief (jobs.weekly) reads a week's deliveries, and one sent a week late reads
# back two weeks.
MIN_RETENTION_DAYS = 15


class Settings(BaseSettings):
    """Every knob the bot has, named as in the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = "sqlite:///data/tidings.db"
    # Names this deployment's advisory locks (with the database's name): two deployments on
    # one PostgreSQL server or database set different names and never wait on each other.
    deployment_name: str = Field(default="tidings", min_length=1)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4.1-mini"
    llm_timeout_seconds: float = 60.0
    llm_input_tokens: int = Field(default=3000, ge=200)
    llm_daily_token_budget: int = Field(default=0, ge=0)
    llm_concurrency: int = Field(default=4, ge=1)
    # Semantic topics (`/subscribe ~…`): the provider's /v1/embeddings model; empty: off.
    embedding_model: str = ""
    # 128: matching 10,000 semantic topics stays within the matcher's budget (bench/matching.py)
    embedding_dimensions: int = Field(default=128, ge=0)  # 0: the model's own size
    embedding_base_url: str = ""  # empty: OPENAI_BASE_URL (same key)
    semantic_threshold: float = Field(default=0.5, gt=0, lt=1)  # a new topic's lowest
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    poll_interval_seconds: int = Field(default=300, ge=1)
    allowed_source_networks: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode
    ] = ()
    # False: only ALLOWED_SOURCE_NETWORKS are reached, never the public internet (an intranet
    # deployment; the tests, so that nothing they start can reach out).
    allow_public_networks: bool = True
    default_language: str = "en"
    log_level: str = "INFO"
    max_response_bytes: int = 10 * 1024 * 1024
    fetch_timeout_seconds: float = 20.0
    full_text: bool = True
    heartbeat_file: str = "data/heartbeat"  # empty: none (the image's HEALTHCHECK reads it)
    parse_workers: int | None = Field(default=None, ge=0)  # None: one per core, at most 4
    parse_timeout_seconds: float = Field(default=15.0, gt=0)  # a worker past it is killed
    commands_per_minute: int = Field(default=20, ge=0)  # per user, also the burst; 0: off
    max_topics_per_chat: int = Field(default=50, ge=0)  # 0: no cap
    # Paid broadcast (jobs.paid): Stars a day for allow_paid_broadcast (0: off), used for a
    # story whose fan-out would take longer than this many seconds at the free 30/s.
    paid_broadcast_stars_per_day: int = Field(default=0, ge=0)
    paid_broadcast_after_seconds: float = Field(default=60.0, ge=0)
    # Sent alerts' rows are deleted after this many days (storage.retention); 0: kept for ever.
    delivery_retention_days: int = Field(default=60, ge=0)
    asks_per_hour: int = Field(default=10, ge=0)  # /ask questions per user, also the burst; 0: off
    # News-search providers asked about every followed topic (news.search); empty: none.
    search_providers: Annotated[tuple[str, ...], NoDecode] = ("gdelt",)
    gdelt_api_url: str = "https://api.gdeltproject.org/api/v2/doc/doc"
    google_news_url: str = "https://news.google.com/rss/search?hl=en-US&gl=US&ceid=US:en"
    search_interval_seconds: int = Field(default=900, ge=1)  # per distinct query
    starter_packs_dir: str = ""  # empty: the packs this repository ships (packs/)

    webhook_url: str = ""  # empty: long polling
    webhook_secret: SecretStr = SecretStr("")
    webhook_listen: str = "0.0.0.0"  # every interface: the proxy reaches it over the network
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_path: str | None = None  # None: the path of WEBHOOK_URL
    # WebSub, in webhook mode only (news.websub): feeds that name a hub are pushed to us.
    websub: bool = True
    websub_callback_url: str = ""  # empty: WEBHOOK_URL's scheme and host, path /websub
    websub_lease_seconds: int = Field(default=10 * 24 * 3600, ge=60)  # asked for; hubs decide
    websub_poll_interval_seconds: int = Field(default=3600, ge=1)  # the safety net's interval
    websub_retry_seconds: int = Field(default=60, ge=1)  # after a hub failed; doubles each time

    @field_validator("delivery_retention_days")
    @classmethod
    def _a_week_at_least(cls, value: int) -> int:
        if 0 < value < MIN_RETENTION_DAYS:
            raise ValueError(f"keep at least {MIN_RETENTION_DAYS} days (a late weekly brief reads "
                             "back two weeks), or 0 to keep every row")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("search_providers", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("allowed_source_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            parts = value.replace(" ", "").split(",")
            return tuple(ipaddress.ip_network(part, strict=False) for part in parts if part)
        return value

    @property
    def embeddings_enabled(self) -> bool:
        """Semantic topics need an embeddings model and the provider's key."""
        return bool(self.embedding_model and self.openai_api_key
                    and self.openai_api_key.get_secret_value())

    @property
    def llm_enabled(self) -> bool:
        """Briefs come from the model only when a key is configured; otherwise offline."""
        return bool(self.openai_api_key and self.openai_api_key.get_secret_value())
