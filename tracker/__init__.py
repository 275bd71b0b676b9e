"""tracker: where a complaint stands. Records every event once and serves each complaint's
read model to the resident holding its tracking token."""
