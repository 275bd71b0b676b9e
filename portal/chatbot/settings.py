"""The chatbot's settings (``SOTONG_CHATBOT_*``), for the portal's composition root to
read once and pass on: where routing and intake answer, the measured thresholds, and the
Kakao skill's limits."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from portal.chatbot.bot import Thresholds
from services.settings import Settings

DEFAULTS = Thresholds()


class ChatbotSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="SOTONG_CHATBOT_", extra="ignore")

    routing_url: str = Field(default="http://127.0.0.1:8002", description="POST /v1/classify.")
    intake_url: str = Field(default="http://127.0.0.1:8001", description="POST /v1/complaints.")
    intake_api_key: SecretStr | None = Field(
        default=None, description="The chatbot channel's credential, when intake asks for one."
    )
    answer_threshold: float = Field(
        default=DEFAULTS.answer,
        ge=0,
        le=1,
        description="Retrieval confidence below which the bot says it does not know "
        "(measured: sotong chatbot-eval --tune).",
    )
    statement_threshold: float = Field(
        default=DEFAULTS.statement,
        ge=0,
        le=1,
        description="A message written as a complaint is answered only from this confidence.",
    )
    classify_timeout_seconds: float = Field(
        default=1.5, gt=0, description="How long a reply waits for routing's department."
    )
    filing_timeout_seconds: float = Field(
        default=3.0, gt=0, description="How long a confirmed handoff waits for intake."
    )
    kakao_deadline_seconds: float = Field(
        default=4.0,
        gt=0,
        lt=5,
        description="A Kakao skill answer gives up (politely) before Open Builder's 5 s.",
    )
    kakao_max_users: int = Field(
        default=10_000, ge=1, description="Conversations kept at once (least recent go)."
    )
    kakao_session_ttl_seconds: float = Field(
        default=900, gt=0, description="A conversation and its pending offer expire after this."
    )
    kakao_user_key_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key for the Kakao user id; unset, a random one per process "
        "(conversations do not survive a restart either).",
    )

    kakao_messages_per_minute: int = Field(
        default=30,
        ge=1,
        description="Skill messages per minute from one Kakao user (by the keyed hash of the "
        "user id; Kakao's servers are every user's address): one every two seconds, more "
        "than a person types. Beyond it the skill answers to try later. In memory.",
    )
    kakao_messages_per_hour: int = Field(
        default=300, ge=1, description="The same per hour (in memory)."
    )
    kakao_total_per_minute: int = Field(
        default=3000,
        ge=1,
        description="Skill messages per minute from all Kakao users together: a ceiling on "
        "what the skill asks of the bot, routing and intake. In memory, per process.",
    )

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(answer=self.answer_threshold, statement=self.statement_threshold)
