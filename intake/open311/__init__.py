"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) at ``/open311/v2/``.

A civic app files through the same path as every channel (``Intake.accept``, channel
``open311``) and reads back through the tracker's HTTP API (``intake.tracker_client``),
never the tracker's collections. ``services.py`` is the service list, ``form.py`` turns a
spec-form POST into a submission, ``status.py`` maps the lifecycle to open/closed,
``render.py`` writes JSON or XML, ``routes.py`` binds them to the paths.
"""
