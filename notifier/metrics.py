"""notifier's domain metrics, on the service's registry. Labels: channel and outcome only."""

from prometheus_client import Counter, Histogram

from services.metrics import KitMetrics


class NotifierMetrics:
    def __init__(self, kit: KitMetrics, *, consumer: str, lifecycle_topic: str) -> None:
        self.notifications = Counter(
            "sotong_notifications_total",
            "Notifications by channel and outcome (sent, skipped, failed), each counted once.",
            ["channel", "outcome"],
            registry=kit.registry,
        )
        self.delivery_seconds = Histogram(
            "sotong_notification_delivery_seconds",
            "Time a channel took to deliver one message.",
            ["channel"],
            registry=kit.registry,
        )
        self.parked = Counter(
            "sotong_notifications_parked_total",
            "Lifecycle events that arrived before their complaint's ComplaintFiled and waited.",
            registry=kit.registry,
        )
        self.duplicates = kit.duplicates.labels(consumer, lifecycle_topic)
