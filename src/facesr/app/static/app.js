// facesr app: the page. Plain JS, no framework, nothing fetched from outside this server.
// Every request carries the session token (header for fetch, query for images and links).
"use strict";

const TOKEN = document.querySelector('meta[name="facesr-token"]').content;
const $ = (sel) => document.querySelector(sel);
const chosen = [];  // File objects dropped or picked
let current = null;  // {job} or {run}: what the results panel shows
let polling = null;
let shownKey = "";

function url(path, params = {}) {
  const q = new URLSearchParams({...params, token: TOKEN});
  return `${path}?${q}`;
}

function fileUrl(rel, download = false) {
  const enc = rel.split("/").map(encodeURIComponent).join("/");
  return url(`api/file/${enc}`, download ? {download: 1} : {});
}

async function api(path, opts = {}) {
  const headers = {...(opts.headers || {}), "X-Facesr-Token": TOKEN};
  const res = await fetch(path, {...opts, headers});
  let body = null;
  try { body = await res.json(); } catch (e) { body = {error: `${res.status} ${res.statusText}`}; }
  return {ok: res.ok, status: res.status, body};
}

// POST a form with upload progress (fetch reports none): onProgress(loaded, total) while the
// files go up, onSent() once they are all sent (the server then checks them); resolves like api
function upload(path, form, onProgress, onSent) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-Facesr-Token", TOKEN);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.upload.onload = () => onSent();
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) {
        body = {error: `${xhr.status} ${xhr.statusText}`};
      }
      resolve({ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, body});
    };
    xhr.onerror = () => resolve({ok: false, status: 0,
                                 body: {error: "the upload failed (connection lost?)"}});
    xhr.send(form);
  });
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

// ------------------------------------------------------------------ inputs
function showChosen() {
  const ul = $("#chosen");
  ul.replaceChildren(...chosen.map((f, i) => el("li", {},
    `${f.name} (${(f.size / 1024).toFixed(1)} KiB) `,
    el("button", {type: "button", class: "remove", text: "remove",
                  onclick: () => { chosen.splice(i, 1); showChosen(); }}))));
}

function addFiles(list) {
  for (const f of list) chosen.push(f);
  showChosen();
}

function setupDrop() {
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  $("#files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
}

async function browse(path) {
  const box = $("#browser");
  box.hidden = false;
  const r = await api(url("api/browse", path ? {path} : {}));
  if (!r.ok) { box.replaceChildren(el("p", {class: "error", text: r.body.error})); return; }
  const items = [];
  if (r.body.path) {
    items.push(el("div", {}, el("strong", {text: r.body.path}), " ",
      el("button", {type: "button", text: "use this folder",
                    onclick: () => { $("#path").value = r.body.path; box.hidden = true; }})));
    if (r.body.parent) {
      items.push(el("div", {}, el("button", {type: "button", text: "⬑ ..",
                                            onclick: () => browse(r.body.parent)})));
    }
  }
  for (const e of r.body.entries) {
    const pick = () => {
      if (e.kind === "folder") browse(e.path);
      else if (e.kind === "weights") { $("#model-path").value = e.path; box.hidden = true; }
      else { $("#path").value = e.path; box.hidden = true; }
    };
    items.push(el("div", {}, el("button", {type: "button", class: `entry ${e.kind}`,
      text: `${e.kind === "folder" ? "📁" : e.kind === "weights" ? "⚙" : "🖼"} ${e.name}`,
      onclick: pick}), e.camera ? el("button", {type: "button", text: "use as the model",
      onclick: () => { $("#model-path").value = e.path; box.hidden = true; }}) : null));
  }
  if (!r.body.entries.length) items.push(el("p", {class: "muted", text: "(nothing usable here)"}));
  box.replaceChildren(...items);
}

// ------------------------------------------------------------------ jobs
async function start() {
  $("#rejected").replaceChildren();
  $("#busy").textContent = "";
  const form = new FormData();
  for (const f of chosen) form.append("files", f, f.name);
  form.append("model", $("#model").value);
  form.append("model_path", $("#model-path").value.trim());
  form.append("path", $("#path").value.trim());
  $("#start").disabled = true;
  const bar = $("#upload-bar");
  bar.value = 0; bar.hidden = false; bar.dataset.sent = "";
  $("#busy").textContent = "uploading…";
  const mb = (n) => (n / 2 ** 20).toFixed(1);
  const r = await upload("api/jobs", form, (loaded, total) => {
    bar.value = loaded / total;
    $("#busy").textContent = `uploading ${Math.round(100 * loaded / total)}% ` +
      `(${mb(loaded)} of ${mb(total)} MB)…`;
  }, () => {
    bar.value = 1; bar.dataset.sent = "1";
    $("#busy").textContent = "uploaded; checking the files…";
  });
  bar.hidden = true;
  $("#busy").textContent = "";
  const rejected = r.body.rejected || [];
  $("#rejected").replaceChildren(...rejected.map((m) => el("li", {class: "bad-file", text: m})));
  if (!r.ok) {
    $("#busy").textContent = r.body.error || `error ${r.status}`;
    $("#start").disabled = false;
    return;
  }
  chosen.length = 0; showChosen();
  follow(r.body.job.id);
}

function follow(jobId) {
  current = {job: jobId};
  $("#progress-panel").hidden = false;
  $("#stop").hidden = false;
  $("#stop").onclick = () => api(`api/jobs/${jobId}/stop`, {method: "POST"});
  clearInterval(polling);
  let seen = "";
  const tick = async () => {
    const r = await api(`api/jobs/${jobId}`);
    if (!r.ok) return;
    showJob(r.body);
    const now = `${r.body.stills_done} ${r.body.state}`;
    if (now !== seen) { seen = now; await showResults(); }  // the records changed
    if (r.body.state !== "running") {
      clearInterval(polling);
      $("#start").disabled = false;
      $("#stop").hidden = true;
      loadHistory();
    }
  };
  polling = setInterval(tick, 700);
  tick();
}

function showJob(job) {
  $("#job-line").textContent = `Job ${job.id}: ${job.state}` +
    ` — ${job.stills_done} of ${job.stills} still(s)` + (job.summary ? `. ${job.summary}` : "");
  $("#job-line").dataset.state = job.state;
  $("#job-bar").max = Math.max(job.stills, 1);
  $("#job-bar").value = job.stills_done;
  $("#progress tbody").replaceChildren(...job.files.map((f) => el("tr", {},
    el("td", {text: f.name}), el("td", {text: `${f.done} / ${f.stills}`}),
    el("td", {class: f.state, text: f.state + (f.errors.length ? `: ${f.errors.join("; ")}` : "")}))));
  $("#job-errors").replaceChildren(...job.errors.map((m) => el("li", {class: "job-error", text: m})));
  $("#job-command").textContent = job.command;
}

// ------------------------------------------------------------------ results
function compareWidget(face) {
  const zoom = Number($("#zoom").value);
  const wrap = el("div", {class: "compare"});
  const before = el("img", {class: "before", alt: "input (low resolution)", src: fileUrl(face.lr)});
  const after = el("img", {class: "after-img", alt: "x4 result", src: fileUrl(face.output)});
  const clip = el("div", {class: "after"}, after);
  const slider = el("input", {type: "range", min: 0, max: 100, value: 50, class: "slider",
                              "aria-label": "before / after"});
  const size = () => {
    const w = after.naturalWidth * zoom, h = after.naturalHeight * zoom;
    if (!w) return;
    for (const img of [before, after]) { img.style.width = `${w}px`; img.style.height = `${h}px`; }
    clip.style.width = `${(w * slider.value) / 100}px`;
    slider.style.width = `${Math.max(w, 160)}px`;
  };
  after.addEventListener("load", size);
  before.addEventListener("load", size);
  slider.addEventListener("input", size);
  wrap.append(before, clip, el("span", {class: "label l", text: "x4 result"}),
              el("span", {class: "label r", text: "input"}));
  return [el("div", {class: "viewport"}, wrap), slider];
}

function card(still, face, k) {
  const where = still.frame_index === null || still.frame_index === undefined ? ""
    : ` frame ${still.frame_index}` + (still.timecode ? ` @ ${still.timecode}` : "");
  const title = `${still.input}${where}` + (still.mode === "frame" ? ` — face ${k}` : "");
  const score = face.score === null || face.score === undefined ? "face crop (no detection)"
    : `detection score ${face.score.toFixed(3)}`;
  const c = el("div", {class: "card", id: `card-${still.record}-${k}`, "data-record": still.record},
    el("h3", {text: title}),
    el("p", {class: "meta score", text: `${score}; ${still.mode} mode (${still.mode_reason});` +
             ` model ${still.model}`}));
  if (face.lr && face.output) c.append(...compareWidget(face));
  else if (face.output) c.append(el("img", {src: fileUrl(face.output), alt: "x4 result"}));
  c.append(el("p", {class: "notice", text: still.notice}),
           el("p", {class: "row"},
             face.output ? el("a", {class: "button download", href: fileUrl(face.output, true),
                                   download: "", text: "download result"}) : null,
             el("a", {class: "button", href: fileUrl(still.record, true), download: "",
                      text: "record (JSON)"})));
  return c;
}

function framePicture(still) {
  const [w, h] = still.size;
  const wrap = el("div", {class: "frame"}, el("img", {src: fileUrl(still.frame),
                                                       alt: `${still.input} x4 frame`}));
  still.faces.forEach((f, k) => {
    if (!f.box) return;
    const [x, y, bw, bh] = f.box;
    const b = el("div", {class: "box"}, el("span", {text: `face ${k} ${f.score.toFixed(2)}`}));
    Object.assign(b.style, {left: `${(100 * x) / w}%`, top: `${(100 * y) / h}%`,
                            width: `${(100 * bw) / w}%`, height: `${(100 * bh) / h}%`});
    wrap.append(b);
  });
  const where = still.timecode ? ` frame ${still.frame_index} @ ${still.timecode}` : "";
  return el("figure", {}, el("figcaption", {text: `${still.input}${where}: ` +
    `${still.faces.length} face(s)`}), wrap);
}

async function showResults() {
  if (!current) return;
  const r = await api(url("api/results", current));
  if (!r.ok) return;
  const stills = r.body.stills;
  const key = JSON.stringify([current, $("#zoom").value, stills.map((s) => [s.record, s.time])]);
  if (key === shownKey) return;
  shownKey = key;
  $("#results-panel").hidden = false;
  $("#results-what").textContent = current.job ? `(job ${current.job})` : "(earlier run)";
  $("#zip").href = url("api/zip", current);
  const cards = [], frames = [], strip = [];
  for (const s of stills) {
    s.faces.forEach((f, k) => cards.push(card(s, f, k)));
    if (s.frame) frames.push(framePicture(s));
    if (s.frame_index !== null && s.frame_index !== undefined && s.faces.length) {
      const thumb = s.frame || s.faces[0].output;
      strip.push(el("figure", {}, el("button", {type: "button",
        onclick: () => document.getElementById(`card-${s.record}-0`).scrollIntoView()},
        el("img", {src: fileUrl(thumb), alt: `frame ${s.frame_index}`})),
        el("figcaption", {text: `${s.timecode || ""} (${s.faces.length})`})));
    }
  }
  $("#cards").replaceChildren(...cards);
  $("#frames").replaceChildren(...frames);
  $("#strip").hidden = !strip.length;
  $("#strip").replaceChildren(...strip);
}

// ------------------------------------------------------------------ history
async function loadHistory() {
  const r = await api(url("api/history"));
  if (!r.ok) return;
  $("#history tbody").replaceChildren(...r.body.runs.map((run) => el("tr", {},
    el("td", {text: run.last.replace("T", " ").slice(0, 19)}),
    el("td", {class: "mono", text: run.command}), el("td", {text: run.model || ""}),
    el("td", {text: run.stills}), el("td", {text: run.faces}),
    el("td", {}, el("button", {type: "button", text: "show",
      onclick: () => { current = {run: run.run}; showResults(); }})))));
}

async function init() {
  setupDrop();
  $("#browse-btn").addEventListener("click", () => browse($("#path").value.trim()));
  $("#start").addEventListener("click", start);
  $("#zoom").addEventListener("change", showResults);
  const r = await api(url("api/info"));
  if (!r.ok) { $("#where").textContent = r.body.error; return; }
  const info = r.body;
  $("#notice").textContent = info.notice;
  $("#where").textContent = `Output folder ${info.out_dir}. Folders you may pick from: ` +
    `${info.roots.join(", ") || "none"}. Uploads up to ` +
    `${(info.max_upload / 2 ** 30).toFixed(2)} GB.`;
  const sel = $("#model");
  for (const m of info.models) {
    const o = el("option", {value: m.name, text: m.name + (m.available ? "" : " (not installed)")});
    if (!m.available) o.disabled = true;
    if (m.default) o.selected = true;
    sel.append(o);
  }
  const about = () => {
    const m = info.models.find((x) => x.name === sel.value);
    $("#model-about").textContent = m ? `${m.description}. Licence: ${m.licence}.` : "";
  };
  sel.addEventListener("change", about); about();
  if (info.busy) $("#busy").textContent = info.busy;
  if (info.job) follow(info.job);
  loadHistory();
}

init();
