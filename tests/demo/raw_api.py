"""Raw requests to the session's glow-demo (tests/demo/conftest.py) for its bad-request corpora.

test_bad_requests.py (the JSON bodies of the API) and test_bad_http.py (the HTTP around them)
send each case as bytes over its own connection (`tests.serving.raw_http.exchange`).
"""

from tests.serving.raw_http import http

JSON = {"Content-Type": "application/json"}


def post(endpoint: str, body, headers=None, length=True) -> bytes:
  return http("POST", f"/api/{endpoint}", body, dict(JSON, **(headers or {})), length=length)


def raw_post(endpoint: str, text: str) -> bytes:
  return post(endpoint, text.encode())
