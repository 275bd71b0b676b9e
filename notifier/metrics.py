"""notifier's domain metrics, on the service's registry. Labels: channel and outcome only."""

from prometheus_client import Counter, Histogram

from services.metrics import KitMetrics

OUTCOMES = ("sent", "fallback", "skipped", "failed")
"""``fallback``: sent, on a channel tried after an earlier one failed (대체발송)."""


class NotifierMetrics:
    def __init__(self, kit: KitMetrics, *, consumer: str, lifecycle_topic: str) -> None:
        self.consumer = consumer
        self.notifications = Counter(
            "sotong_notifications_total",
            "Notifications by channel and outcome (sent, fallback, skipped, failed), "
            "each counted once.",
            ["channel", "outcome"],
            registry=kit.registry,
        )
        self.delivery_seconds = Histogram(
            "sotong_notification_delivery_seconds",
            "Time one attempt on a channel took, whatever its result.",
            ["channel"],
            registry=kit.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.retries = Counter(
            "sotong_notification_retries_total",
            "Retryable failures on a channel that were tried again (timeouts, 5xx, 429).",
            ["channel"],
            registry=kit.registry,
        )
        self.parked = Counter(
            "sotong_notifications_parked_total",
            "Lifecycle events that arrived before their complaint's ComplaintFiled and waited.",
            registry=kit.registry,
        )
        self.deferred = Counter(
            "sotong_notifications_deferred_total",
            "Messages held back by quiet hours, to be sent when they end.",
            registry=kit.registry,
        )
        self.retries_scheduled = Counter(
            "sotong_notification_retries_scheduled_total",
            "Deliveries sent round the retry topic (notification.retry) to be tried later.",
            ["channel"],
            registry=kit.registry,
        )
        self.swept = Counter(
            "sotong_notification_deliveries_swept_total",
            "Deliveries no attempt held within their lease, re-queued on the retry topic, "
            "by the status they were found in (sending, retrying).",
            ["status"],
            registry=kit.registry,
        )
        self.capped = Counter(
            "sotong_notifications_capped_total",
            "Residents' messages not sent because their contact reached the daily cap.",
            registry=kit.registry,
        )
        self.duplicates = kit.duplicates.labels(consumer, lifecycle_topic)
        self.dead_lettered = kit.dead_lettered

    def undeliverable(self, topic: str) -> None:
        """One event dead-lettered because a recipient could not be told."""
        self.dead_lettered.labels(self.consumer, topic, "undeliverable").inc()
