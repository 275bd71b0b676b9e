"""tracker: where a complaint stands. Records every event once, in batches, and serves
the read side: a resident's complaints, a department's queue, staff search and statistics,
all rebuildable from the event store (``python -m tracker.rebuild``)."""
