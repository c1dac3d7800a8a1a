"""One JSON POST with bounded retries and backoff (timeouts, dropped connections, HTTP 429/502/503/504), shared by
the remote reward client and the HTTP detector; any other failure is a one-line ``RewardError``."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tdmr1.errors import RewardError
from tdmr1.rewards.web_guard import parse_json

RETRY_STATUS = frozenset({429, 502, 503, 504})


def server_reason(exc: urllib.error.HTTPError) -> str:
    """The ``error`` (or ``detail``) field of an error answer's JSON body, else the status text."""
    try:
        data = json.loads(exc.read() or b"{}")
        return str(data.get("error") or data.get("detail") or exc.reason)
    except Exception:  # noqa: BLE001 - any body: fall back to the status text
        return str(exc.reason)


@dataclass
class JsonPoster:
    """POSTs JSON to ``url + path``; ``what`` names the server in errors ("reward server", ...)."""

    url: str
    what: str
    timeout_s: float = 60.0
    retries: int = 2
    backoff_s: float = 0.5
    token: str | None = None
    requests: int = 0  # HTTP requests sent (tests: a cache hit sends none)
    max_response_bytes: int = 16 * 1024 * 1024

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    raw = resp.read(self.max_response_bytes + 1)
            except urllib.error.HTTPError as exc:
                reason = server_reason(exc)
                if exc.code in RETRY_STATUS:
                    last = f"HTTP {exc.code}: {reason}"
                    continue
                raise RewardError(f"{self.what} {self.url} answered {exc.code}: {reason}") from None
            except TimeoutError:
                last = f"no answer within {self.timeout_s:g} s"
                continue
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                cause = getattr(exc, "reason", exc)
                last = f"connection failed ({type(cause).__name__}: {cause})" if str(cause) else type(cause).__name__
                if isinstance(cause, TimeoutError | socket.timeout):
                    last = f"no answer within {self.timeout_s:g} s"
                continue
            if len(raw) > self.max_response_bytes:
                raise RewardError(f"{self.what} {self.url} answered more than {self.max_response_bytes} bytes")
            try:
                return parse_json(raw)  # NaN / Infinity literals parse; callers check their values
            except ValueError:  # malformed, not UTF-8, or nested too deep
                raise RewardError(f"{self.what} {self.url} answered with malformed JSON") from None
        raise RewardError(f"{self.what} {self.url} failed after {self.retries + 1} tries: {last}")
