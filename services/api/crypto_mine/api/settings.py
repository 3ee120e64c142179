"""The api's settings: one frozen object built from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crypto_mine.common.names import Ttl
from crypto_mine.common.settings import (
    Env,
    MongoSettings,
    RedisSettings,
    SettingsError,
    window_seconds,
)
from crypto_mine.pipeline.events import EventSettings


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
class ApiSettings:
    redis: RedisSettings
    mongo: MongoSettings
    jwt_secret: str
    jwt_algorithms: tuple[str, ...]
    jwt_jwks_url: str | None
    jwt_audience: str | None
    jwt_issuer: str | None
    jwt_ttl_seconds: int
    global_bucket: Bucket
    user_bucket: Bucket
    ip_bucket: Bucket
    api_bucket: Bucket | None
    queue_max_depth: int
    idempotency_ttl_seconds: int
    idempotency_window_seconds: int
    idempotency_lookup_timeout: float
    max_clicks_per_request: int
    job_timeout_seconds: int
    batch_max_clicks: int
    job_max_clicks: int
    batch_concurrency: int
    admission_timeout_seconds: float
    status_cache_ttl_seconds: int
    status_max_age_seconds: int
    status_stale_seconds: int
    trusted_proxies: int
    hsts_max_age: int
    max_body_bytes: int
    max_requests_in_flight: int
    id_allocator_url: str
    id_allocator_timeout: float
    id_allocator_token: str | None
    auth_cookie_secure: bool
    login_max_attempts: int
    login_ip_max_attempts: int
    login_window_seconds: int
    login_delay_max_seconds: int
    login_device_ttl_seconds: int
    register_max_attempts: int
    register_window_seconds: int
    mobile_apk_url: str | None
    mobile_apk_version: str | None
    mobile_apk_build_date: str | None
    mobile_apk_notes: str | None
    use_queue: bool
    reward_per_click: int
    events: EventSettings
    events_max_streams_per_user: int
    events_heartbeat_seconds: float
    gzip_min_bytes: int
    cdn_base_url: str | None
    cors_origins: tuple[str, ...]
    log_level: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> ApiSettings:
        env = env or Env()
        algorithms = tuple(a.strip() for a in env.str("JWT_ALGORITHMS", "HS256").split(","))
        for algorithm in algorithms:
            if algorithm not in ("HS256", "RS256"):
                raise SettingsError(f"JWT_ALGORITHMS may hold HS256 and RS256, got {algorithm!r}.")
        secret = env.optional("JWT_SECRET") or ""
        if "HS256" in algorithms and len(secret) < 32:
            raise SettingsError("JWT_SECRET is missing or shorter than 32 characters.")
        cdn = env.optional("CDN_BASE_URL")
        api_limit = env.int("API_RATE_LIMIT", 100, min=0)
        api_window = env.int("API_RATE_LIMIT_WINDOW", 60, min=1)
        jwks_url = env.optional("JWT_JWKS_URL")
        if "RS256" in algorithms and not jwks_url:
            raise SettingsError("JWT_JWKS_URL is missing, and RS256 is in JWT_ALGORITHMS.")
        redis = RedisSettings.from_env(env)
        use_queue = env.bool("USE_QUEUE", True)
        if redis.shards > 1 and not use_queue:
            raise SettingsError(
                "USE_QUEUE=false applies clicks in the api, on one shard only: "
                "unset REDIS_SHARD_URLS, or set USE_QUEUE=true."
            )
        return cls(
            redis=redis,
            mongo=MongoSettings.from_env(env),
            jwt_secret=secret,
            jwt_algorithms=algorithms,
            jwt_jwks_url=jwks_url,
            jwt_audience=env.optional("JWT_AUDIENCE"),
            jwt_issuer=env.optional("JWT_ISSUER"),
            jwt_ttl_seconds=env.int("JWT_TTL_SECONDS", 86_400, min=60),
            global_bucket=Bucket(
                "global",
                env.float("MINING_RATE_LIMIT_GLOBAL", 12_000, min=0.001),
                env.int("MINING_RATE_LIMIT_GLOBAL_BURST", 24_000, min=1),
            ),
            user_bucket=Bucket(
                "user",
                env.float("MINING_RATE_LIMIT_PER_USER", 5, min=0.001),
                env.int("MINING_RATE_LIMIT_USER_BURST", 10, min=1),
            ),
            ip_bucket=Bucket(
                "ip",
                env.float("MINING_RATE_LIMIT_PER_IP", 20, min=0.001),
                env.int("MINING_RATE_LIMIT_IP_BURST", 40, min=1),
            ),
            api_bucket=Bucket("api", api_limit / api_window, api_limit) if api_limit else None,
            queue_max_depth=env.int("MINING_QUEUE_MAX_DEPTH", 5_000, min=1),
            idempotency_ttl_seconds=env.int(
                "MINING_IDEMPOTENCY_TTL_SECONDS", Ttl.idempotency, min=60
            ),
            idempotency_window_seconds=window_seconds(env),
            idempotency_lookup_timeout=env.float(
                "MINING_IDEMPOTENCY_LOOKUP_TIMEOUT", 0.1, min=0.01, max=10
            ),
            max_clicks_per_request=env.int("MINING_MAX_CLICKS_PER_REQUEST", 10, min=1, max=1000),
            job_timeout_seconds=env.int("MINING_JOB_TIMEOUT_SECONDS", 120, min=5),
            batch_max_clicks=env.int("MINING_BATCH_MAX_CLICKS", 256, min=1, max=5000),
            job_max_clicks=env.int("MINING_JOB_MAX_CLICKS", 1000, min=1, max=20_000),
            batch_concurrency=env.int("MINING_BATCH_CONCURRENCY", 4, min=1, max=64),
            admission_timeout_seconds=env.float("MINING_ADMISSION_TIMEOUT", 2.0, min=0.05),
            status_cache_ttl_seconds=env.int("MINING_STATUS_CACHE_TTL", Ttl.status_cache, min=1),
            status_max_age_seconds=env.int("MINING_STATUS_MAX_AGE", 2, min=0),
            status_stale_seconds=env.int("MINING_STATUS_STALE_WHILE_REVALIDATE", 10, min=0),
            trusted_proxies=env.int("TRUSTED_PROXY_COUNT", 0, min=0, max=10),
            hsts_max_age=env.int("HSTS_MAX_AGE", 31_536_000, min=0),
            max_body_bytes=env.int("MAX_BODY_BYTES", 4096, min=256),
            max_requests_in_flight=env.int("MAX_REQUESTS_IN_FLIGHT", 256, min=1),
            id_allocator_url=env.str("ID_ALLOCATOR_URL", "http://127.0.0.1:8081"),
            id_allocator_timeout=env.float("ID_ALLOCATOR_TIMEOUT", 5.0, min=0.01),
            id_allocator_token=env.optional("ID_ALLOCATOR_TOKEN"),
            auth_cookie_secure=env.bool("AUTH_COOKIE_SECURE", True),
            login_max_attempts=env.int("LOGIN_MAX_ATTEMPTS", 5, min=1),
            login_ip_max_attempts=env.int("LOGIN_IP_MAX_ATTEMPTS", 30, min=1),
            login_window_seconds=env.int("LOGIN_WINDOW_SECONDS", 900, min=1),
            login_delay_max_seconds=env.int("LOGIN_DELAY_MAX_SECONDS", 60, min=1, max=3600),
            login_device_ttl_seconds=env.int(
                "LOGIN_DEVICE_TTL_SECONDS", 30 * 86_400, min=60, max=400 * 86_400
            ),
            register_max_attempts=env.int("REGISTER_MAX_ATTEMPTS", 20, min=1),
            register_window_seconds=env.int("REGISTER_WINDOW_SECONDS", 3600, min=1),
            mobile_apk_url=env.optional("MOBILE_APK_DOWNLOAD_URL"),
            mobile_apk_version=env.optional("MOBILE_APK_VERSION"),
            mobile_apk_build_date=env.optional("MOBILE_APK_BUILD_DATE"),
            mobile_apk_notes=env.optional("MOBILE_APK_RELEASE_NOTES"),
            use_queue=use_queue,
            reward_per_click=env.int("MINING_REWARD_PER_CLICK", 1, min=1),
            events=EventSettings.from_env(env),
            events_max_streams_per_user=env.int(
                "MINING_EVENTS_MAX_STREAMS_PER_USER", 3, min=1, max=100
            ),
            events_heartbeat_seconds=env.float("MINING_EVENTS_HEARTBEAT", 15.0, min=0.2, max=300),
            gzip_min_bytes=env.int("GZIP_MIN_BYTES", 1024, min=0),
            cdn_base_url=origin("CDN_BASE_URL", cdn) if cdn else None,
            cors_origins=cors_origins(env.optional("CORS_ORIGIN")),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        )
