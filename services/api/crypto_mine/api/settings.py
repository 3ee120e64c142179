"""The api's settings: one frozen object built from the environment at start-up, in groups.

``ApiSettings`` holds one frozen group per concern (``settings.auth.jwt_secret``,
``settings.admission.max_clicks_per_request``, ...), as the shared ``RedisSettings``,
``MongoSettings`` and ``EventSettings`` already were; each group reads its own variables with
``Env``. The variables keep their names (the chart, ``.env.example`` and the README's
Configuration table use them); the original documents' other names of a few are common
settings' ``alias=`` (``REDIS_HOST``/``REDIS_PORT``, ``DB_POOL_SIZE``).

These are frozen dataclasses read with ``Env``, not pydantic-settings models, because the
latter would cost what this module must keep:

- the hot path: reading ``settings.auth.jwt_secret`` took 90 to 140 ns from pydantic 2.14
  models, 10 to 25 ns from these (as the flat fields did), on every request;
- the errors: ``Env``'s name the variable and say what it must be (``MAX_BODY_BYTES must be at
  least 256, got '10'.``), which the tests pin; pydantic's report of its own form
  (``Input should be greater than or equal to 256 [type=greater_than_equal, ...]``);
- the aliases: with both names set, pydantic takes the first silently, where ours must agree
  or start-up stops naming both (``crypto_mine.common.settings``);
- one scheme: the worker, id-allocator and operator read the same ``Env`` way, and the shared
  groups are theirs too; pydantic and pydantic-core would also be new to the api image, and
  importing pydantic-settings took about a second (a third of the api's own imports) that
  every uvicorn worker would pay at start.

``HttpLimits`` (``http_limits.py``: request heads and timeouts) stays apart: uvicorn builds the
HTTP protocol from its import path, before any application exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crypto_mine.common.ids import AllocatorClientSettings
from crypto_mine.common.names import Ttl
from crypto_mine.common.settings import (
    Env,
    MongoSettings,
    RedisSettings,
    SettingsError,
    window_seconds,
)
from crypto_mine.pipeline.events import EventSettings
from crypto_mine.pipeline.runtime import PipelineSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
API_LIMIT, API_WINDOW = 100, 60  # the general limit: requests per window (seconds) per IP


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` stored."""

    name: str
    rate: float
    burst: int


def origin(variable: str, value: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL with nothing after it, lowercased."""
    parts = urlsplit(value.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{variable} must be an http(s) URL like https://host, got {value!r}.")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise SettingsError(
            f"{variable} must be scheme://host[:port] with no path, query or credentials, "
            f"got {value!r}."
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def cors_origins(value: str | None) -> tuple[str, ...]:
    """``CORS_ORIGIN``: the browser origins, besides the api's own, allowed to use it."""
    if not value:
        return ()
    items = [item.strip() for item in value.split(",") if item.strip()]
    if "*" in items:
        raise SettingsError(
            "CORS_ORIGIN may not be '*': it would let any site use a signed-in visitor's "
            "session; list the origins, e.g. https://game.example.com,https://m.example.com."
        )
    return tuple(dict.fromkeys(origin("CORS_ORIGIN", item) for item in items))


@dataclass(frozen=True)
class AuthSettings:
    """The tokens the api accepts and issues (``JWT_*``), and its cookie."""

    jwt_secret: str = ""
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_ttl_seconds: int = 86_400
    cookie_secure: bool = True

    @classmethod
    def from_env(cls, env: Env) -> AuthSettings:
        algorithms = tuple(a.strip() for a in env.str("JWT_ALGORITHMS", "HS256").split(","))
        for algorithm in algorithms:
            if algorithm not in ("HS256", "RS256"):
                raise SettingsError(f"JWT_ALGORITHMS may hold HS256 and RS256, got {algorithm!r}.")
        secret = env.optional("JWT_SECRET") or cls.jwt_secret
        if "HS256" in algorithms and len(secret) < 32:
            raise SettingsError("JWT_SECRET is missing or shorter than 32 characters.")
        jwks_url = env.optional("JWT_JWKS_URL")
        if "RS256" in algorithms and not jwks_url:
            raise SettingsError("JWT_JWKS_URL is missing, and RS256 is in JWT_ALGORITHMS.")
        return cls(
            jwt_secret=secret,
            jwt_algorithms=algorithms,
            jwt_jwks_url=jwks_url,
            jwt_audience=env.optional("JWT_AUDIENCE"),
            jwt_issuer=env.optional("JWT_ISSUER"),
            jwt_ttl_seconds=env.int("JWT_TTL_SECONDS", cls.jwt_ttl_seconds, min=60),
            cookie_secure=env.bool("AUTH_COOKIE_SECURE", cls.cookie_secure),
        )


@dataclass(frozen=True)
class AccountSettings:
    """Sign-up and login: attempts per window, delays, the login-device cookie."""

    login_max_attempts: int = 5
    login_ip_max_attempts: int = 30
    login_window_seconds: int = 900
    login_delay_max_seconds: int = 60
    login_device_ttl_seconds: int = 30 * 86_400
    register_max_attempts: int = 20
    register_window_seconds: int = 3600

    @classmethod
    def from_env(cls, env: Env) -> AccountSettings:
        return cls(
            login_max_attempts=env.int("LOGIN_MAX_ATTEMPTS", cls.login_max_attempts, min=1),
            login_ip_max_attempts=env.int(
                "LOGIN_IP_MAX_ATTEMPTS", cls.login_ip_max_attempts, min=1
            ),
            login_window_seconds=env.int("LOGIN_WINDOW_SECONDS", cls.login_window_seconds, min=1),
            login_delay_max_seconds=env.int(
                "LOGIN_DELAY_MAX_SECONDS", cls.login_delay_max_seconds, min=1, max=3600
            ),
            login_device_ttl_seconds=env.int(
                "LOGIN_DEVICE_TTL_SECONDS", cls.login_device_ttl_seconds, min=60, max=400 * 86_400
            ),
            register_max_attempts=env.int(
                "REGISTER_MAX_ATTEMPTS", cls.register_max_attempts, min=1
            ),
            register_window_seconds=env.int(
                "REGISTER_WINDOW_SECONDS", cls.register_window_seconds, min=1
            ),
        )


@dataclass(frozen=True)
class LimitSettings:
    """The click's token buckets (``MINING_RATE_LIMIT_*``), and the general limit of the other
    ``/api/*`` routes (``API_RATE_LIMIT``; None when it is off)."""

    global_bucket: Bucket = Bucket("global", 12_000, 24_000)
    user_bucket: Bucket = Bucket("user", 5, 10)
    ip_bucket: Bucket = Bucket("ip", 20, 40)
    api_bucket: Bucket | None = Bucket("api", API_LIMIT / API_WINDOW, API_LIMIT)

    @classmethod
    def from_env(cls, env: Env) -> LimitSettings:
        api_limit = env.int("API_RATE_LIMIT", API_LIMIT, min=0)
        api_window = env.int("API_RATE_LIMIT_WINDOW", API_WINDOW, min=1)
        return cls(
            global_bucket=Bucket(
                "global",
                env.float("MINING_RATE_LIMIT_GLOBAL", cls.global_bucket.rate, min=0.001),
                env.int("MINING_RATE_LIMIT_GLOBAL_BURST", cls.global_bucket.burst, min=1),
            ),
            user_bucket=Bucket(
                "user",
                env.float("MINING_RATE_LIMIT_PER_USER", cls.user_bucket.rate, min=0.001),
                env.int("MINING_RATE_LIMIT_USER_BURST", cls.user_bucket.burst, min=1),
            ),
            ip_bucket=Bucket(
                "ip",
                env.float("MINING_RATE_LIMIT_PER_IP", cls.ip_bucket.rate, min=0.001),
                env.int("MINING_RATE_LIMIT_IP_BURST", cls.ip_bucket.burst, min=1),
            ),
            api_bucket=Bucket("api", api_limit / api_window, api_limit) if api_limit else None,
        )


@dataclass(frozen=True)
class AdmissionSettings:
    """How clicks are admitted and queued, or with ``use_queue`` off applied in the api."""

    use_queue: bool = True
    queue_max_depth: int = 5_000
    max_clicks_per_request: int = 10
    batch_max_clicks: int = 256
    batch_concurrency: int = 4
    timeout_seconds: float = 2.0
    job_timeout_seconds: int = 120
    job_max_clicks: int = 1000
    reward_per_click: int = 1  # with use_queue off

    @classmethod
    def from_env(cls, env: Env) -> AdmissionSettings:
        return cls(
            use_queue=env.bool("USE_QUEUE", cls.use_queue),
            queue_max_depth=env.int("MINING_QUEUE_MAX_DEPTH", cls.queue_max_depth, min=1),
            max_clicks_per_request=env.int(
                "MINING_MAX_CLICKS_PER_REQUEST", cls.max_clicks_per_request, min=1, max=1000
            ),
            batch_max_clicks=env.int(
                "MINING_BATCH_MAX_CLICKS", cls.batch_max_clicks, min=1, max=5000
            ),
            batch_concurrency=env.int(
                "MINING_BATCH_CONCURRENCY", cls.batch_concurrency, min=1, max=64
            ),
            timeout_seconds=env.float("MINING_ADMISSION_TIMEOUT", cls.timeout_seconds, min=0.05),
            job_timeout_seconds=env.int(
                "MINING_JOB_TIMEOUT_SECONDS", cls.job_timeout_seconds, min=5
            ),
            job_max_clicks=env.int("MINING_JOB_MAX_CLICKS", cls.job_max_clicks, min=1, max=20_000),
            reward_per_click=env.int("MINING_REWARD_PER_CLICK", cls.reward_per_click, min=1),
        )


@dataclass(frozen=True)
class IdempotencySettings:
    """The lifetimes of click records, and the bound of a batch's MongoDB lookup."""

    ttl_seconds: int = Ttl.idempotency
    window_seconds: int = Ttl.window
    lookup_timeout: float = 0.1

    @classmethod
    def from_env(cls, env: Env) -> IdempotencySettings:
        return cls(
            ttl_seconds=env.int("MINING_IDEMPOTENCY_TTL_SECONDS", cls.ttl_seconds, min=60),
            window_seconds=window_seconds(env),
            lookup_timeout=env.float(
                "MINING_IDEMPOTENCY_LOOKUP_TIMEOUT", cls.lookup_timeout, min=0.01, max=10
            ),
        )


@dataclass(frozen=True)
class StatusSettings:
    """``/api/mining/status``: its Redis cache, and its ``Cache-Control``."""

    cache_ttl_seconds: int = Ttl.status_cache
    max_age_seconds: int = 2
    stale_seconds: int = 10

    @classmethod
    def from_env(cls, env: Env) -> StatusSettings:
        return cls(
            cache_ttl_seconds=env.int("MINING_STATUS_CACHE_TTL", cls.cache_ttl_seconds, min=1),
            max_age_seconds=env.int("MINING_STATUS_MAX_AGE", cls.max_age_seconds, min=0),
            stale_seconds=env.int("MINING_STATUS_STALE_WHILE_REVALIDATE", cls.stale_seconds, min=0),
        )


@dataclass(frozen=True)
class HttpSettings:
    """What every request meets: proxies, bodies, load shedding, compression, CORS, HSTS."""

    trusted_proxies: int = 0
    hsts_max_age: int = 31_536_000
    max_body_bytes: int = 4096
    max_requests_in_flight: int = 256
    gzip_min_bytes: int = 1024
    cors_origins: tuple[str, ...] = ()
    cdn_base_url: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> HttpSettings:
        cdn = env.optional("CDN_BASE_URL")
        return cls(
            trusted_proxies=env.int("TRUSTED_PROXY_COUNT", cls.trusted_proxies, min=0, max=10),
            hsts_max_age=env.int("HSTS_MAX_AGE", cls.hsts_max_age, min=0),
            max_body_bytes=env.int("MAX_BODY_BYTES", cls.max_body_bytes, min=256),
            max_requests_in_flight=env.int(
                "MAX_REQUESTS_IN_FLIGHT", cls.max_requests_in_flight, min=1
            ),
            gzip_min_bytes=env.int("GZIP_MIN_BYTES", cls.gzip_min_bytes, min=0),
            cors_origins=cors_origins(env.optional("CORS_ORIGIN")),
            cdn_base_url=origin("CDN_BASE_URL", cdn) if cdn else None,
        )


@dataclass(frozen=True)
class FeedSettings:
    """The live feeds of a user's events: event streams and WebSockets."""

    max_per_user: int = 3
    heartbeat_seconds: float = 15.0

    @classmethod
    def from_env(cls, env: Env) -> FeedSettings:
        return cls(
            max_per_user=env.int(
                "MINING_EVENTS_MAX_STREAMS_PER_USER", cls.max_per_user, min=1, max=100
            ),
            heartbeat_seconds=env.float(
                "MINING_EVENTS_HEARTBEAT", cls.heartbeat_seconds, min=0.2, max=300
            ),
        )


@dataclass(frozen=True)
class MobileSettings:
    """The mobile release the demo page and ``/api/mobile-app/apk`` announce; none by default."""

    apk_url: str | None = None
    apk_version: str | None = None
    apk_build_date: str | None = None
    apk_notes: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> MobileSettings:
        return cls(
            apk_url=env.optional("MOBILE_APK_DOWNLOAD_URL"),
            apk_version=env.optional("MOBILE_APK_VERSION"),
            apk_build_date=env.optional("MOBILE_APK_BUILD_DATE"),
            apk_notes=env.optional("MOBILE_APK_RELEASE_NOTES"),
        )


@dataclass(frozen=True)
class ApiSettings:
    redis: RedisSettings
    mongo: MongoSettings
    auth: AuthSettings
    accounts: AccountSettings
    id_allocator: AllocatorClientSettings
    limits: LimitSettings
    admission: AdmissionSettings
    idempotency: IdempotencySettings
    status: StatusSettings
    http: HttpSettings
    events: EventSettings  # the user streams' length and lifetime, with use_queue off
    feeds: FeedSettings
    mobile: MobileSettings
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Env | None = None) -> ApiSettings:
        env = env or Env()
        auth = AuthSettings.from_env(env)
        redis = RedisSettings.from_env(env)
        admission = AdmissionSettings.from_env(env)
        if redis.shards > 1 and not admission.use_queue:
            raise SettingsError(
                "USE_QUEUE=false applies clicks in the api, on one shard only: "
                "unset REDIS_SHARD_URLS, or set USE_QUEUE=true."
            )
        return cls(
            redis=redis,
            mongo=MongoSettings.from_env(env),
            auth=auth,
            accounts=AccountSettings.from_env(env),
            id_allocator=AllocatorClientSettings.from_env(env),
            limits=LimitSettings.from_env(env),
            admission=admission,
            idempotency=IdempotencySettings.from_env(env),
            status=StatusSettings.from_env(env),
            http=HttpSettings.from_env(env),
            events=EventSettings.from_env(env),
            feeds=FeedSettings.from_env(env),
            mobile=MobileSettings.from_env(env),
            log_level=env.choice("LOG_LEVEL", cls.log_level, LOG_LEVELS),
        )

    @property
    def pipeline(self) -> PipelineSettings:
        """What the api's ``USE_QUEUE=false`` mode runs batches with (one shard, no sharding)."""
        return PipelineSettings(
            redis=self.redis,
            mongo=self.mongo,
            reward_per_click=self.admission.reward_per_click,
            status_cache_ttl_seconds=self.status.cache_ttl_seconds,
            idempotency_window_seconds=self.idempotency.window_seconds,
            events=self.events,
            retry_budget_seconds=self.admission.timeout_seconds,
        )
