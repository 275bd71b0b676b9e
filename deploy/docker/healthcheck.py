"""Container health check: GET the service's own /healthz (or another path) on loopback.

The image installs this file as ``/usr/local/bin/sotong-healthcheck``. The Dockerfile's
HEALTHCHECK runs it bare (liveness, ``/healthz``); docker-compose.yml runs it as
``sotong-healthcheck /readyz SERVICE`` (readiness). It uses the standard library only,
so a check costs milliseconds instead of importing a service.

    sotong-healthcheck [PATH] [SERVICE]

Without SERVICE, the service is the one PID 1 runs (``sotong run SERVICE``, possibly
under an init such as ``docker-init -- sotong run SERVICE``). The port is
``SOTONG_<SERVICE>_HTTP_PORT`` or the service's default; the host is loopback unless
``SOTONG_<SERVICE>_HTTP_HOST`` names one specific address. Exit 0 only on HTTP 200.
"""

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

# Must equal the ``http_port`` defaults of the settings classes (a unit test checks it).
DEFAULT_PORTS = {"intake": 8001, "routing": 8002, "tracker": 8003, "notifier": 8004, "portal": 8005}
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def service_from_argv(argv: Sequence[str]) -> str | None:
    """The last argument that names a service, e.g. ``sotong run tracker`` → tracker."""
    for arg in reversed(argv):
        if arg in DEFAULT_PORTS:
            return arg
    return None


def pid1_argv() -> list[str]:
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def health_url(service: str, path: str, env: Mapping[str, str]) -> str:
    prefix = f"SOTONG_{service.upper()}_HTTP_"
    port = int(env.get(prefix + "PORT", DEFAULT_PORTS[service]))
    host = env.get(prefix + "HOST", "127.0.0.1").strip()
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/{path.lstrip('/')}"


def check(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    if not url.startswith("http://"):
        return False, f"{url}: only http:// is checked"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return response.status == 200, f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:  # 503 from /readyz lands here
        exc.close()
        return False, f"{url}: {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    path = argv[0] if argv else "/healthz"
    service = argv[1] if len(argv) > 1 else service_from_argv(pid1_argv())
    if service is None or service not in DEFAULT_PORTS:
        print(f"no Sotong service named {service!r}", file=sys.stderr)
        return 2
    ok, detail = check(health_url(service, path, env))
    print(detail, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
