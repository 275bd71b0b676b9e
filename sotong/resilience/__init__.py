"""The resilience suite (``make resilience``, ``sotong resilience``): poison messages,
an isolation matrix, a personal-data scan, fuzzing, kill -9 and outages under load, on
the embedded backends as ``sotong up`` runs them; a report of checks against bars."""
