"""In-memory fakes of the services' stores, for the unit tier (checked by tests/contract)."""
