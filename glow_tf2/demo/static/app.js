// glow-demo page: talks to the JSON API under /api/ of the server that served it.
"use strict";

const $ = (id) => document.getElementById(id);
const PNG = "data:image/png;base64,";
const state = { info: null, examples: [], current: null, from: null, to: null, pending: 0, tickets: {} };

// A slider sends a request per step; only the newest answer of each kind may be shown.
function ticket(kind) {
  state.tickets[kind] = (state.tickets[kind] || 0) + 1;
  const mine = state.tickets[kind];
  return () => state.tickets[kind] === mine;
}

// ---------------------------------------------------------------------------------------------
// Talking to the server; every failure ends up in the error banner with the server's message.

async function api(endpoint, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  state.pending += 1;
  document.body.classList.add("busy");
  document.body.dataset.pending = state.pending;
  try {
    let response;
    try {
      response = await fetch("/api/" + endpoint, options);
    } catch (err) {
      throw new Error("cannot reach the demo server (is glow-demo still running?)");
    }
    let data = null;
    try { data = await response.json(); } catch (err) { /* not JSON: reported below */ }
    if (!response.ok) {
      const reason = data && data.error ? data.error : response.statusText;
      throw new Error(`${endpoint} failed (${response.status}): ${reason}`);
    }
    if (data === null) throw new Error(`${endpoint}: the server answered without JSON`);
    return data;
  } finally {
    state.pending -= 1;
    document.body.dataset.pending = state.pending;
    if (!state.pending) document.body.classList.remove("busy");
  }
}

function showError(err) {
  const box = $("error");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

// Runs an action from a control: clears the old error first, shows a new one.
function act(fn) {
  return async (...args) => {
    clearError();
    try { await fn(...args); } catch (err) { showError(err); }
  };
}

function showNotes(notes) {
  const list = $("notes");
  list.replaceChildren(...(notes || []).map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}

function image(b64, alt) {
  const img = document.createElement("img");
  img.src = PNG + b64;
  img.alt = alt || "";
  return img;
}

function domainName(d) { return d.toUpperCase(); }
function other(d) { return d === "a" ? "b" : "a"; }
function isPair() { return state.info && state.info.domains.length > 1; }

function withLabel(body) {
  if (state.info && state.info.n_classes > 0) body.label = Number($("label").value) || 0;
  return body;
}

// ---------------------------------------------------------------------------------------------
// The current image (an example, an upload or the drawing) and its translation.

function setCurrent(dataUrl, domain) {
  state.current = { image: dataUrl, domain: domain };
  $("input-image").src = dataUrl;
  $("input-caption").textContent = `input (${domainName(domain)})`;
  $("manip-input").src = dataUrl;
  // Results of the previous image would now be misleading next to the new one.
  for (const id of ["translate-output", "manip-output", "manip-translated"]) $(id).removeAttribute("src");
  $("translations").replaceChildren();
  showNotes([]);
}

// The translation at the section's temperature and seed, and a row of draws at that temperature.
const N_TRANSLATIONS = 6;

async function translate() {
  if (!state.current) throw new Error("pick an example, upload an image or draw one first");
  if (!isPair()) return;  // one model: its section is hidden, the image still feeds the others
  const latest = ticket("translate");
  const body = withLabel({
    image: state.current.image, source: state.current.domain,
    temperature: Number($("translate-temperature").value), seed: Number($("translate-seed").value) || 0,
  });
  const [result, row] = await Promise.all([
    api("translate", body), api("translations", { ...body, n: N_TRANSLATIONS }),
  ]);
  if (!latest()) return;
  $("input-image").src = PNG + result.input;
  $("translate-output").src = PNG + result.output;
  $("output-caption").textContent = `translation (${domainName(result.target)})`;
  $("translations").replaceChildren(...row.outputs.map((b64, i) => image(b64, `translation ${i}`)));
  $("translations").dataset.temperature = row.temperature;
  showNotes(result.notes);
}

function fixed(x) { return Number(x).toFixed(2); }

// What the temperature does for this pair: nothing at all unless it was trained coupled.
function describeCoupling(info) {
  if (!info.coupled) {
    $("translate-note").textContent = "This pair was not trained with the coupled prior (rho = 1): " +
      "its translation is deterministic, so every translation is the same whatever the temperature.";
    $("pairs-note").textContent = "Not coupled (rho = 1): B decodes A's code itself, z_B = z_A.";
    return;
  }
  const rho = info.rho;
  $("translate-note").textContent = `Coupled pair, rho from ${fixed(rho.min)} to ${fixed(rho.max)} ` +
    `(mean ${fixed(rho.mean)}). T = 0 decodes the conditional mean code rho·z; T > 0 adds ` +
    "T·sqrt(1 − rho²)·n, a new draw of n per translation.";
  $("pairs-note").textContent = "Each column is one pair drawn from the joint model: " +
    "z_A ~ N(0, T²), z_B = rho·z_A + T·sqrt(1 − rho²)·n.";
}

function renderExamples() {
  const strip = $("example-strip");
  const domain = $("source").value;
  strip.replaceChildren(...state.examples.map((example, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.dataset.index = i;
    button.title = `example ${i} (label ${example.label})`;
    const b64 = example["image_" + domain] || example.image_a;
    button.appendChild(image(b64, `example ${i}`));
    button.addEventListener("click", act(async () => {
      strip.querySelectorAll("button").forEach((b) => b.classList.remove("selected"));
      button.classList.add("selected");
      if (state.info.n_classes > 0) $("label").value = example.label;
      setCurrent(PNG + b64, example["image_" + domain] ? domain : "a");
      await translate();
    }));
    return button;
  }));
}

// ---------------------------------------------------------------------------------------------
// Drawing: black strokes on white, as edge maps are.

function setupCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false;
  let last = null;
  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    last = point(e);
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = point(e);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = Number($("pen").value);
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    last = p;
  });
  const useDrawing = act(async () => {
    setCurrent(canvas.toDataURL("image/png"), "a");
    await translate();
  });
  canvas.addEventListener("pointerup", () => { if (drawing) { drawing = false; useDrawing(); } });
  $("clear-canvas").addEventListener("click", clear);
  $("use-drawing").addEventListener("click", useDrawing);
}

// ---------------------------------------------------------------------------------------------
// Samples, interpolation, manipulation.

async function sample() {
  const temperature = Number($("temperature").value);
  const latest = ticket("sample");
  const result = await api("sample", withLabel({
    domain: $("sample-domain").value, temperature: temperature,
    seed: Number($("seed").value) || 0, n: 8,
  }));
  if (!latest()) return;
  $("samples").replaceChildren(...result.images.map((b64, i) => image(b64, `sample ${i}`)));
  $("samples").dataset.temperature = result.temperature;
}

async function samplePairs() {
  if (!isPair()) return;
  const latest = ticket("pairs");
  const count = Math.min(8, Math.max(1, Math.round(Number($("pair-count").value) || 4)));
  const result = await api("sample_pairs", withLabel({
    temperature: Number($("pair-temperature").value), seed: Number($("pair-seed").value) || 0, n: count,
  }));
  if (!latest()) return;
  $("pairs-a").replaceChildren(...result.images_a.map((b64, i) => image(b64, `pair ${i}, A`)));
  $("pairs-b").replaceChildren(...result.images_b.map((b64, i) => image(b64, `pair ${i}, B`)));
  $("pairs-a").dataset.temperature = result.temperature;
}

async function interpolate() {
  if (!state.from || !state.to) throw new Error("choose the two images to interpolate between");
  if (state.from.domain !== state.to.domain) {
    throw new Error("both images must come from the same domain (pick them with the same 'its domain')");
  }
  const latest = ticket("interpolate");
  const result = await api("interpolate", withLabel({
    images: [state.from.image, state.to.image], domain: state.from.domain, n: Number($("frames").value),
  }));
  if (!latest()) return;
  $("interp-frames").replaceChildren(...result.frames.map((b64, i) => image(b64, `frame ${i}`)));
  $("interp-translated").replaceChildren(...(result.translated || []).map((b64, i) => image(b64, `translated frame ${i}`)));
  showNotes(result.notes);
}

async function manipulate() {
  if (!state.current) throw new Error("pick an example, upload an image or draw one first");
  const direction = $("direction").value;
  if (!direction) throw new Error("no manipulation directions: run glow-manipulators for this model");
  const latest = ticket("manipulate");
  const result = await api("manipulate", withLabel({
    image: state.current.image, domain: state.current.domain, direction: direction,
    strength: Number($("strength").value),
  }));
  if (!latest()) return;
  $("manip-input").src = PNG + result.input;
  $("manip-output").src = PNG + result.output;
  if (result.translated) {
    $("manip-translated").src = PNG + result.translated;
    $("manip-translated-caption").textContent = `after, translated to ${domainName(other(result.domain))}`;
  }
  showNotes(result.notes);
}

function setEnd(which) {
  if (!state.current) { showError("pick an example, upload an image or draw one first"); return; }
  state[which] = { ...state.current };
  $(which === "from" ? "interp-from" : "interp-to").src = state.current.image;
}

// ---------------------------------------------------------------------------------------------
// Start-up.

async function start() {
  const info = await api("info");
  state.info = info;
  const shape = info.image_shape.join("x");
  $("model-info").textContent =
    `${info.domains.length > 1 ? (info.coupled ? "pair A/B, coupled" : "pair A/B") : "one model"} · images ${shape} · ${info.n_bits_x} bits · ` +
    `code size ${info.data_dim}` + (info.n_classes ? ` · ${info.n_classes} classes` : "");
  $("messages").replaceChildren(...info.messages.map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
  if (isPair()) {
    describeCoupling(info);
  } else {
    $("translate-section").hidden = true;
    $("pairs-section").hidden = true;
    for (const id of ["source", "sample-domain"]) {
      $(id).querySelector('option[value="b"]').remove();
    }
  }
  if (info.n_classes > 0) { $("label-wrap").hidden = false; $("label").max = info.n_classes - 1; }
  $("direction").replaceChildren(...info.directions.map((name) => {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    return option;
  }));
  const examples = await api("examples");
  state.examples = examples.examples;
  $("examples-source").textContent = examples.source ? `(from ${examples.source})` : (examples.message || "");
  renderExamples();
  if (state.examples.length >= 2) {
    state.from = { image: PNG + state.examples[0].image_a, domain: "a" };
    state.to = { image: PNG + state.examples[1].image_a, domain: "a" };
    $("interp-from").src = state.from.image;
    $("interp-to").src = state.to.image;
  }
  await sample();
  await samplePairs();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", () => {
  setupCanvas();
  $("source").addEventListener("change", renderExamples);
  $("translate").addEventListener("click", act(translate));
  $("upload").addEventListener("change", act(async () => {
    const file = $("upload").files[0];
    if (!file) return;
    const dataUrl = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error("could not read " + file.name));
      reader.readAsDataURL(file);
    });
    setCurrent(dataUrl, $("source").value);
    await translate();
  }));
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = Number($("temperature").value).toFixed(2);
  });
  $("temperature").addEventListener("change", act(sample));
  $("sample-domain").addEventListener("change", act(sample));
  $("seed").addEventListener("change", act(sample));
  $("new-samples").addEventListener("click", act(async () => {
    $("seed").value = Math.floor(Math.random() * 2147483647);
    await sample();
  }));
  $("translate-temperature").addEventListener("input", () => {
    $("translate-temperature-value").textContent = fixed($("translate-temperature").value);
  });
  const retranslate = act(async () => { if (state.current) await translate(); });
  $("translate-temperature").addEventListener("change", retranslate);
  $("translate-seed").addEventListener("change", retranslate);
  $("new-translations").addEventListener("click", act(async () => {
    $("translate-seed").value = Math.floor(Math.random() * 2147483647);
    if (state.current) await translate();
  }));
  $("pair-temperature").addEventListener("input", () => {
    $("pair-temperature-value").textContent = fixed($("pair-temperature").value);
  });
  $("pair-temperature").addEventListener("change", act(samplePairs));
  $("pair-seed").addEventListener("change", act(samplePairs));
  $("pair-count").addEventListener("change", act(samplePairs));
  $("sample-pairs").addEventListener("click", act(async () => {
    $("pair-seed").value = Math.floor(Math.random() * 2147483647);
    await samplePairs();
  }));
  $("frames").addEventListener("input", () => { $("frames-value").textContent = $("frames").value; });
  $("set-from").addEventListener("click", () => setEnd("from"));
  $("set-to").addEventListener("click", () => setEnd("to"));
  $("interpolate").addEventListener("click", act(interpolate));
  $("strength").addEventListener("input", () => {
    $("strength-value").textContent = Number($("strength").value).toFixed(2);
  });
  $("strength").addEventListener("change", act(async () => { if (state.current) await manipulate(); }));
  $("direction").addEventListener("change", act(async () => { if (state.current) await manipulate(); }));
  $("manipulate").addEventListener("click", act(manipulate));
  act(start)();
});
