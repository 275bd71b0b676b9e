"""MongoDB's way of keeping what notifier remembers: one adapter per concept."""
