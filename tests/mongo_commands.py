"""PyMongo command monitoring for tests that count what a batch costs the database."""

from collections import Counter

from pymongo import monitoring


class Commands(monitoring.CommandListener):
    """The commands sent to the server, by name."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None
