"""The allocator's settings, read once from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto_mine.common.settings import Env, MongoSettings, SettingsError

SEGMENT = "segment"
STRICT = "strict"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The largest `count` one request may ask for.
MAX_COUNT = 10_000
MIN_TOKEN_LENGTH = 32


@dataclass(frozen=True)
class SegmentPolicy:
    """How big the ranges a segment-mode replica reserves are, and when it fetches the next.

    The size starts at ``initial``. When ``adaptive``, it doubles (up to ``maximum``) when a
    segment lasted less than ``target_seconds`` and halves (down to ``minimum``) when one lasted
    more than ten times that. The next segment is fetched in the background once fewer than
    ``threshold`` x size ids are left in the buffer.
    """

    initial: int = 200
    minimum: int = 100
    maximum: int = 10_000
    adaptive: bool = True
    target_seconds: float = 1.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not self.minimum <= self.initial <= self.maximum:
            raise SettingsError(
                "ID_SEGMENT_MIN <= ID_SEGMENT_SIZE <= ID_SEGMENT_MAX does not hold: "
                f"{self.minimum}, {self.initial}, {self.maximum}."
            )


@dataclass(frozen=True)
class RetryPolicy:
    """Tries of one MongoDB reservation: 1 + ``retries``, waiting base x 2^n x [0.5, 1.5)."""

    retries: int = 3
    base_seconds: float = 0.1
    # Bound of one attempt, server selection included.
    attempt_timeout: float = 1.0
    # Strict mode: the longest a request waits for its ids, conflicts and retries included.
    # Below the callers' own timeout (the api's ID_ALLOCATOR_TIMEOUT, 5 s), so that an answer
    # is not sent to a caller that gave up.
    deadline: float = 4.0


@dataclass(frozen=True)
class AllocatorSettings:
    mode: str = SEGMENT
    counter_name: str = "user_id"
    start: int = 1
    segments: SegmentPolicy = field(default_factory=SegmentPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_after_seconds: int = 1
    host: str = "0.0.0.0"  # noqa: S104 - pods listen on all interfaces
    port: int = 8081
    metrics_port: int = 9101
    # The callers' shared secret (`Authorization: Bearer`); see service_token().
    token: str = field(default="", repr=False)
    log_level: str = "INFO"
    mongo: MongoSettings = field(default_factory=MongoSettings)

    @classmethod
    def from_env(cls, env: Env | None = None) -> AllocatorSettings:
        env = env or Env()
        size = env.int("ID_SEGMENT_SIZE", SegmentPolicy.initial, min=1, max=1_000_000)
        minimum = env.int("ID_SEGMENT_MIN", min(SegmentPolicy.minimum, size), min=1)
        maximum = env.int("ID_SEGMENT_MAX", max(SegmentPolicy.maximum, size), max=1_000_000)
        if minimum > size:
            raise SettingsError(f"ID_SEGMENT_MIN must be at most ID_SEGMENT_SIZE ({size}).")
        if maximum < size:
            raise SettingsError(f"ID_SEGMENT_MAX must be at least ID_SEGMENT_SIZE ({size}).")
        return cls(
            mode=env.choice("ID_ALLOCATOR_MODE", SEGMENT, (SEGMENT, STRICT)),
            counter_name=env.str("ID_COUNTER_NAME", cls.counter_name),
            start=env.int("ID_START", cls.start, min=0),
            segments=SegmentPolicy(
                initial=size,
                minimum=minimum,
                maximum=maximum,
                adaptive=env.bool("ID_SEGMENT_ADAPTIVE", SegmentPolicy.adaptive),
                target_seconds=env.float(
                    "ID_SEGMENT_TARGET_SECONDS", SegmentPolicy.target_seconds, min=0.001
                ),
                threshold=env.float(
                    "ID_PREFETCH_THRESHOLD", SegmentPolicy.threshold, min=0.01, max=1.0
                ),
            ),
            retry=RetryPolicy(
                # MAX_RETRIES and RETRY_DELAY: the user-id guide's names.
                retries=env.int(
                    "ID_RETRIES", RetryPolicy.retries, min=0, max=10, alias="MAX_RETRIES"
                ),
                base_seconds=env.int(
                    "ID_RETRY_BASE_MS", 100, min=1, max=10_000, alias="RETRY_DELAY"
                )
                / 1000,
                attempt_timeout=env.int("ID_MONGO_TIMEOUT_MS", 1000, min=10, max=60_000) / 1000,
                deadline=env.int("ID_REQUEST_DEADLINE_MS", 4000, min=10, max=120_000) / 1000,
            ),
            retry_after_seconds=env.int("ID_RETRY_AFTER_SECONDS", cls.retry_after_seconds, min=0),
            host=env.str("HOST", cls.host),
            port=env.int("PORT", cls.port, min=1, max=65_535),
            metrics_port=env.int("ID_METRICS_PORT", cls.metrics_port, min=0, max=65_535),
            token=service_token(env),
            log_level=_log_level(env),
            mongo=MongoSettings.from_env(env),
        )


def service_token(env: Env) -> str:
    """``ID_ALLOCATOR_TOKEN``: the secret every caller of ``POST /v1/ids`` presents."""
    token = env.optional("ID_ALLOCATOR_TOKEN") or ""
    if len(token) < MIN_TOKEN_LENGTH:
        raise SettingsError(
            f"ID_ALLOCATOR_TOKEN is missing or shorter than {MIN_TOKEN_LENGTH} characters: "
            "the allocator hands out ids only to callers that present it."
        )
    return token


def _log_level(env: Env) -> str:
    level = env.str("LOG_LEVEL", AllocatorSettings.log_level).upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}.")
    return level
