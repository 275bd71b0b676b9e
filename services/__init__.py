"""The shared kit: settings, broker factory, dead letters, metrics, logging, CLI, local stack."""
