"""A small client of the management API for tests: bearer token, JSON, problem checks."""

from __future__ import annotations

from typing import Any

import requests

from cptest.secrets import remember

PROBLEM = "urn:certplane:problem:"


class ApiClient:
    def __init__(self, base_url: str, token: str | None, *, reason: str | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if reason is not None:
            self.session.headers["Certplane-Reason"] = reason

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, self.base_url + path, timeout=60, **kwargs)
        _remember_secrets(response)
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json if json is not None else {}, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, json=json, **kwargs)


def _remember_secrets(response: requests.Response) -> None:
    """Secrets the API shows once (tokens, EAB HMAC keys, webhook keys) join the log scan."""
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return
    body = response.json()
    if not isinstance(body, dict):
        return
    for field in ("token", "hmac_key", "secret"):
        value = body.get(field)
        if isinstance(value, str) and len(value) >= 16:
            remember(value)
            remember(value.rsplit("_", 1)[-1])


def problem_type(response: requests.Response) -> str:
    """The problem type of an error answer, after checking the problem document's shape."""
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == response.status_code, body
    assert body["type"].startswith(PROBLEM), body
    return str(body["type"][len(PROBLEM) :])
