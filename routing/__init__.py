"""routing: the lifecycle state machine, department classification, handler assignment."""
