"""glow-demo end to end: the `glow-demo` command, driven in headless Chromium as a person would.

Debian's chromium (/usr/bin/chromium) driven by Playwright (`pip install playwright`; no browser is
ever downloaded). If the browser cannot start, the test fails: it never skips.
"""

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
from PIL import Image
import pytest

from glow_tf2.demo import images as image_io
from tests.demo.test_demo import demo_files  # the shared tiny exported pair

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
]
TIMEOUT_MS = 30_000


def glow_demo_command():
  """The installed console script, next to this Python."""
  script = os.path.join(os.path.dirname(sys.executable), "glow-demo")
  assert os.path.exists(script), f"{script} missing: run `pip install -e .`"
  return [script]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
  files = demo_files(tmp_path_factory)
  log_path = tmp_path_factory.mktemp("glow_demo") / "server.log"
  log = open(log_path, "w")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  process = subprocess.Popen(
    glow_demo_command() + ["--saved_model", files["saved_model"], "--port", "0"],
    stdout=subprocess.PIPE,
    stderr=log,
    text=True,
    env=env,
  )
  url = None
  lines = []

  def read():
    nonlocal url
    for line in process.stdout:
      lines.append(line)
      match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
      if match and url is None:
        url = match.group(1)

  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  deadline = time.time() + 120
  while url is None and process.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  if url is None:
    process.kill()
    log.close()
    pytest.fail(f"glow-demo did not start: {''.join(lines)}\n{log_path.read_text()[-3000:]}")
  yield url
  process.terminate()
  try:
    assert process.wait(timeout=20) == 0, "glow-demo did not exit cleanly on SIGTERM"
  finally:
    if process.poll() is None:
      process.kill()
    log.close()


def post(url, endpoint, body):
  request = urllib.request.Request(
    url + "api/" + endpoint,
    data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json"},
  )
  with urllib.request.urlopen(request, timeout=60) as response:
    return json.loads(response.read())


def pixels(src: str) -> np.ndarray:
  assert src.startswith("data:image/png;base64,"), src[:40]
  return image_io.from_png_base64(src)


def srcs(page, selector):
  return page.eval_on_selector_all(selector, "els => els.map(e => e.src)")


def test_every_feature_in_a_browser(demo_url, tmp_path):
  from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top

  assert os.path.exists(CHROMIUM), (
    f"{CHROMIUM} missing: `apt-get install chromium` (the browser test fails rather than skips)"
  )
  with sync_playwright() as playwright:
    # The page's Content-Security-Policy forbids eval, which Playwright's waits use.
    context = playwright.chromium.launch_persistent_context(
      tempfile.mkdtemp(dir=tmp_path, prefix="chromium-profile-"),
      executable_path=CHROMIUM,
      args=CHROMIUM_ARGS,
      headless=True,
      bypass_csp=True,
      viewport={"width": 1280, "height": 1000},
    )
    try:
      page = context.new_page()
      page.set_default_timeout(TIMEOUT_MS)
      console_errors = []
      page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
      page.on("pageerror", lambda e: console_errors.append(str(e)))
      page.goto(demo_url)
      page.wait_for_selector("body[data-ready='1']")
      assert "pair A/B" in page.inner_text("#model-info")
      assert page.locator("#example-strip button").count() == 10
      assert page.locator("#samples img").count() == 8

      # Choose an example: its translation appears next to it, differs from it, and is the API's.
      page.click("#example-strip button >> nth=2")
      page.wait_for_function("document.getElementById('translate-output').src.startsWith('data:')")
      shown_input = pixels(page.get_attribute("#input-image", "src"))
      shown_output = pixels(page.get_attribute("#translate-output", "src"))
      assert shown_input.shape == shown_output.shape == (16, 16, 1)
      assert np.abs(shown_output.astype(int) - shown_input).mean() > 5
      expected = post(
        demo_url, "translate", {"image": image_io.to_png_base64(shown_input), "source": "a"}
      )
      np.testing.assert_array_equal(shown_output, image_io.from_png_base64(expected["output"]))
      assert page.inner_text("#output-caption") == "translation (B)"
      # At the default temperature 0 the row of draws is six copies of the mean translation.
      row = srcs(page, "#translations img")
      assert len(row) == 6 and set(row) == {page.get_attribute("#translate-output", "src")}
      assert "Coupled pair, rho from -0.80 to 0.95" in page.inner_text("#translate-note")

      # The translation's temperature slider: 4 steps of 0.05, then six different draws.
      page.focus("#translate-temperature")
      for _ in range(4):
        page.keyboard.press("ArrowRight")
      page.wait_for_function(
        "document.getElementById('translations').dataset.temperature === '0.2'"
      )
      page.wait_for_function("document.body.dataset.pending === '0'")
      assert page.inner_text("#translate-temperature-value") == "0.20"
      row = [s.split(",", 1)[1] for s in srcs(page, "#translations img")]
      body = {"image": image_io.to_png_base64(shown_input), "temperature": 0.2, "seed": 0}
      assert row == post(demo_url, "translations", dict(body, n=6))["outputs"]
      assert len(set(row)) == 6
      warm = page.get_attribute("#translate-output", "src").split(",", 1)[1]
      assert warm == post(demo_url, "translate", body)["output"]

      # Sampled pairs: four at start (T = 0.7, seed 0), then new ones with a new seed.
      pairs = [srcs(page, "#pairs-a img"), srcs(page, "#pairs-b img")]
      expected = post(demo_url, "sample_pairs", {"temperature": 0.7, "seed": 0, "n": 4})
      assert [[s.split(",", 1)[1] for s in row] for row in pairs] == [
        expected["images_a"],
        expected["images_b"],
      ]
      page.click("#sample-pairs")
      page.wait_for_function(
        f"document.querySelector('#pairs-a img').src !== {json.dumps(pairs[0][0])}"
      )
      page.wait_for_function("document.body.dataset.pending === '0'")
      seed = int(page.input_value("#pair-seed"))
      expected = post(demo_url, "sample_pairs", {"temperature": 0.7, "seed": seed, "n": 4})
      assert [s.split(",", 1)[1] for s in srcs(page, "#pairs-b img")] == expected["images_b"]

      # Move the temperature slider with the keyboard: new samples at the new temperature.
      before = srcs(page, "#samples img")
      page.focus("#temperature")
      for _ in range(4):
        page.keyboard.press("ArrowLeft")
      page.wait_for_function("document.getElementById('samples').dataset.temperature === '0.5'")
      assert page.inner_text("#temperature-value") == "0.50"
      after = srcs(page, "#samples img")
      assert len(after) == 8 and after != before
      expected = post(demo_url, "sample", {"domain": "a", "temperature": 0.5, "seed": 0, "n": 8})
      assert [s.split(",", 1)[1] for s in after] == expected["images"]

      # Interpolate between the two default ends (examples 0 and 1) with 6 frames.
      page.focus("#frames")
      page.keyboard.press("ArrowLeft")
      page.keyboard.press("ArrowLeft")
      assert page.inner_text("#frames-value") == "6"
      page.click("#interpolate")
      page.wait_for_function("document.querySelectorAll('#interp-frames img').length === 6")
      frames = [pixels(s) for s in srcs(page, "#interp-frames img")]
      np.testing.assert_array_equal(frames[0], pixels(page.get_attribute("#interp-from", "src")))
      np.testing.assert_array_equal(frames[-1], pixels(page.get_attribute("#interp-to", "src")))
      assert len({f.tobytes() for f in frames}) == 6
      assert page.locator("#interp-translated img").count() == 6

      # Manipulate the chosen example along "digit 7" at strength 2.
      page.select_option("#direction", "digit 7")
      page.wait_for_function("document.getElementById('manip-output').src.startsWith('data:')")
      page.focus("#strength")
      for _ in range(4):
        page.keyboard.press("ArrowRight")
      page.wait_for_function("document.getElementById('strength-value').textContent === '2.00'")
      page.click("#manipulate")
      page.wait_for_function("document.body.dataset.pending === '0'")
      manipulated = pixels(page.get_attribute("#manip-output", "src"))
      expected = post(
        demo_url,
        "manipulate",
        {
          "image": image_io.to_png_base64(shown_input),
          "domain": "a",
          "direction": "digit 7",
          "strength": 2.0,
        },
      )
      np.testing.assert_array_equal(manipulated, image_io.from_png_base64(expected["output"]))
      assert not np.array_equal(manipulated, shown_input)
      assert page.is_hidden("#error")
      assert console_errors == [], console_errors

      # Draw on the canvas: the 256x256 drawing is translated, with a note that it was resized.
      old_output = page.get_attribute("#translate-output", "src")
      page.locator("#canvas").scroll_into_view_if_needed()  # the pairs' button scrolled down
      box = page.locator("#canvas").bounding_box()
      page.mouse.move(box["x"] + 60, box["y"] + 50)
      page.mouse.down()
      for x, y in [(200, 60), (190, 200), (70, 190), (60, 55)]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=5)
      page.mouse.up()
      page.wait_for_function("document.getElementById('notes').innerText.includes('256x256')")
      page.wait_for_function("document.getElementById('translate-output').src.startsWith('data:')")
      assert page.get_attribute("#translate-output", "src") != old_output
      notes = page.inner_text("#notes")
      assert "resized from 256x256 to 16x16" in notes, notes
      drawn = pixels(page.get_attribute("#input-image", "src"))
      assert drawn.min() < 128 < drawn.max()  # black strokes on white

      page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
      assert (tmp_path / "demo.png").stat().st_size > 10_000

      # A file that is no image: the server's message shows in the error banner.
      page.set_input_files(
        "#upload",
        files=[{"name": "shoe.png", "mimeType": "image/png", "buffer": b"certainly not a PNG"}],
      )
      page.wait_for_selector("#error:not([hidden])")
      assert "not an image" in page.inner_text("#error")
      # An uploaded image of the wrong size works, with a note.
      buffer = io.BytesIO()
      Image.fromarray(np.full((40, 40, 3), (200, 40, 90), np.uint8)).save(buffer, format="PNG")
      page.set_input_files(
        "#upload",
        files=[{"name": "grey.png", "mimeType": "image/png", "buffer": buffer.getvalue()}],
      )
      page.wait_for_selector("#error[hidden]", state="attached")
      page.wait_for_function("document.getElementById('notes').innerText.includes('40x40')")
      assert "colour converted to grey" in page.inner_text("#notes")
      page.wait_for_function("document.getElementById('translate-output').src.startsWith('data:')")
    finally:
      context.close()
