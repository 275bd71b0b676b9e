"""One Prometheus registry per service: FastStream's Kafka metrics plus domain metrics.

Label values are bounded: topic, consumer, department code, state, channel, outcome.
Never a complaint id, a name or a phone number.
"""

from prometheus_client import CollectorRegistry, Counter


class KitMetrics:
    """Metrics every service has, on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.dead_lettered = Counter(
            "sotong_dead_lettered_total",
            "Messages sent to the dead-letter topic, by source topic and cause.",
            ["consumer", "topic", "cause"],
            registry=registry,
        )
        self.retries = Counter(
            "sotong_consume_retries_total",
            "Retries of a failing message before success or dead-lettering.",
            ["consumer", "topic"],
            registry=registry,
        )
        self.duplicates = Counter(
            "sotong_duplicate_messages_total",
            "Redelivered messages recognised as already processed (no effect).",
            ["consumer", "topic"],
            registry=registry,
        )
