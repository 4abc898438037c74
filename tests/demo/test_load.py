"""glow-demo under load: 100 clients at once, 10 API requests each, every one on a new connection.

The demo is the console script over the session's exported pair (`--max_connections=128`, so
that all 100 clients are served at once), a process of its own so that its memory can be read.
Half the requests translate an image (PNG in, PNG out), half sample two images at one of four
seeds. No request may fail to connect or be reset, no connection may be dropped by a full
accept queue (the listen backlog was 5), every answer must be the one a lone request gets, and
the resident memory after the load must be within 200 MB of before. Prints the figures
(`pytest -s`): docs/serving.md records them.
"""

import json

import numpy as np
import pytest

from glow_tf2.demo import images as image_io
from tests.demo.demo_pair import SHAPE
from tests.demo.raw_api import post
from tests.serving import load

CLIENTS = 100
REQUESTS = 10
MAX_RSS_GROWTH_MB = 200


@pytest.fixture(scope="module")
def demo_process(files):
  server = load.ServerProcess(
    "glow-demo",
    [f"--saved_model={files['saved_model']}", f"--max_connections={CLIENTS + 28}"],
    r"serving .* at http://127\.0\.0\.1:(\d+)/",
  )
  yield server
  server.stop()


def _requests():
  """{key: request bytes}: a translation of one image (T = 0) and samples of 4 seeds."""
  image = (np.arange(256, dtype=np.int64).reshape(SHAPE) * 7 % 256).astype(np.uint8)
  requests = {"translate": post("translate", {"image": image_io.to_png_base64(image)})}
  for seed in range(4):
    body = {"domain": "b", "temperature": 0.7, "seed": seed, "n": 2}
    requests[f"sample-{seed}"] = post("sample", body)
  return requests


def _images(body: bytes) -> np.ndarray:
  payload = json.loads(body)
  pngs = payload["images"] if "images" in payload else [payload["output"]]
  return np.stack([image_io.from_png_base64(p) for p in pngs]).astype(int)


def test_100_clients_at_once_are_all_answered_right(demo_process):
  requests = _requests()
  expected = {}
  for key, data in requests.items():  # a lone request of each kind: the answers, and warm-up
    status, body = load.exchange(demo_process.port, data, timeout=60)
    assert status == 200, body[:300]
    expected[key] = _images(body)
  keys = sorted(requests)
  rss_before = demo_process.rss_mb()
  overflows_before = load.listen_overflows()

  def request_of(client, i):
    key = keys[(client + i) % len(keys)]
    return requests[key], key

  def check(key, status, body):
    if status != 200:
      return f"{key}: status {status}: {body[:200]!r}"
    got = _images(body)
    if got.shape != expected[key].shape or np.abs(got - expected[key]).max() > 1:
      return f"{key}: other images than a lone request's"
    return None

  result = load.run_clients(demo_process.port, request_of, check, CLIENTS, REQUESTS)
  rss_after = demo_process.rss_mb()
  overflows = load.listen_overflows() - overflows_before
  summary = result.summary()
  print(
    f"\nglow-demo: {CLIENTS} clients x {REQUESTS} requests: {summary['answered']} answered in "
    f"{summary['wall_s']:.1f} s ({summary['requests_per_s']:.0f}/s), "
    f"p50 {summary['p50_ms']:.0f} ms, p99 {summary['p99_ms']:.0f} ms, "
    f"max {summary['max_ms']:.0f} ms; failures {summary['failures']}, accept queue "
    f"overflows {overflows}, connects of 1 s or more {summary['connects_of_1s_or_more']}; "
    f"RSS {rss_before:.0f} -> {rss_after:.0f} MB"
  )
  assert result.failures == {}, summary
  assert overflows == 0, summary  # the machine's counter: another process's overflow counts too
  assert result.wrong == [], result.wrong[:5]
  assert summary["answered"] == CLIENTS * REQUESTS
  assert rss_after - rss_before < MAX_RSS_GROWTH_MB
  status, _ = load.exchange(demo_process.port, requests["translate"], timeout=60)
  assert status == 200
