"""The study page's HTML skeleton, CSS and JavaScript (no external files, no network).

``{{title}}``, ``{{study}}``, ``{{style}}``, ``{{data}}`` and ``{{script}}`` in
:data:`TEMPLATE` are filled by :func:`facesr.study.page.render_page`.
"""

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>{{style}}</style>
</head>
<body>
<header>
  <h1>{{title}}</h1>
  <label>Your name <input id="rater" type="text" autocomplete="name" required></label>
  <span class="progress"><progress id="bar" value="0" max="1"></progress>
    <span id="done"></span></span>
  <button id="save" type="button">Save rankings</button>
</header>
<main>
  <p class="help">Rank the pictures of each face from best to worst: click them, or press their
  letters, best first. Click a ranked picture again to take it out. Keys: <kbd>A</kbd>,
  <kbd>B</kbd>, ... rank; <kbd>Backspace</kbd> undo; <kbd>&larr;</kbd> <kbd>&rarr;</kbd>
  previous / next face; <kbd>Enter</kbd> next face. When every face is ranked, press
  <b>Save rankings</b> and send the downloaded file to the study organiser.</p>
  <noscript><p class="warn">This page needs JavaScript to record rankings.</p></noscript>
  <section id="face" aria-labelledby="face-title">
    <h2 id="face-title"></h2>
    <div class="row">
      <figure id="ref" hidden><img alt="Input: the low-resolution face, for reference">
        <figcaption>Input (low resolution), for reference: not ranked</figcaption></figure>
      <div id="options" role="group" aria-label="Pictures to rank"></div>
    </div>
    <p id="hint" aria-live="polite"></p>
    <div class="controls">
      <button id="prev" type="button">&larr; Previous</button>
      <button id="undo" type="button">Undo</button>
      <button id="clear" type="button">Clear</button>
      <button id="next" type="button">Next &rarr;</button>
      <label>Picture size <input id="size" type="range" min="96" max="768" step="16"></label>
    </div>
  </section>
  <nav id="faces" aria-label="Faces"></nav>
  <p id="status" role="status" aria-live="polite"></p>
  <p class="foot">Study {{study}}. Your choices stay in this browser until you save them.</p>
</main>
<script type="application/json" id="study-data">{{data}}</script>
<script>{{script}}</script>
</body>
</html>
"""

STYLE = """
:root { --size: 256px; color-scheme: dark; }
body { margin: 0; background: #404040; color: #eee; font: 15px/1.4 system-ui, sans-serif; }
header { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; gap: .5rem 1.2rem;
  align-items: center; padding: .6rem 1rem; background: #2b2b2b; border-bottom: 1px solid #555; }
h1 { font-size: 1.15rem; margin: 0; }
h2 { font-size: 1rem; margin: .3rem 0 .6rem; }
main { padding: .4rem 1rem 2rem; }
.help { max-width: 62rem; color: #ccc; }
kbd { border: 1px solid #777; border-radius: 3px; padding: 0 .3em; background: #333; font: inherit;
  font-size: .9em; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
#ref { margin: 0; padding: 4px 1rem 0 0; border-right: 2px dashed #777; }
#ref img { width: var(--size); display: block; image-rendering: pixelated; }
#ref figcaption { font-size: .85rem; color: #ccc; max-width: var(--size); margin-top: .3rem; }
#options { display: flex; flex-wrap: wrap; gap: 1rem; }
button { font: inherit; padding: .35rem .8rem; border-radius: 4px; border: 1px solid #777;
  background: #555; color: #fff; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
.option { display: flex; flex-direction: column; gap: 4px; padding: 4px; background: #2b2b2b;
  border: 3px solid #2b2b2b; border-radius: 6px; }
.option img { width: var(--size); display: block; }
.option:hover { border-color: #888; }
.option[aria-pressed="true"] { border-color: #f0b400; }
.cap { display: flex; justify-content: space-between; align-items: center; min-height: 1.8rem; }
.letter { font-weight: 700; font-size: 1.2rem; padding: 0 .4rem; }
.rank:not(:empty) { background: #f0b400; color: #000; font-weight: 700; padding: .05rem .5rem;
  border-radius: 4px; }
button:focus-visible, input:focus-visible { outline: 3px solid #6cf; outline-offset: 2px; }
.controls { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .4rem 0; }
#save { background: #2a7a3a; border-color: #3c9; font-weight: 600; }
#faces { display: flex; flex-wrap: wrap; gap: .3rem; margin: .6rem 0; }
#faces button { min-width: 2.4rem; padding: .2rem .4rem; background: #333; }
#faces button.done { background: #2a5a3a; }
#faces button[aria-current] { outline: 2px solid #f0b400; }
.warn { color: #ffb0a0; font-weight: 600; }
input[type=text] { font: inherit; padding: .25rem .4rem; }
progress { width: 10rem; vertical-align: middle; }
.foot { color: #999; font-size: .85rem; }
"""

SCRIPT = r"""
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("study-data").textContent);
  const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const $ = (id) => document.getElementById(id);
  const items = data.items, n = items.length, storeKey = "facesr-study-" + data.study;
  let ranks = items.map(() => []), current = 0, buttons = [];

  const ordinal = (k) => k + ((k % 100 >= 11 && k % 100 <= 13) ? "th"
    : ({1: "st", 2: "nd", 3: "rd"}[k % 10] || "th"));
  const complete = (i) => ranks[i].length === items[i].options.length;
  const validRank = (r, i) => Array.isArray(r) && new Set(r).size === r.length
    && r.every((j) => Number.isInteger(j) && j >= 0 && j < items[i].options.length);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const say = (text, warn) => {
    $("status").textContent = text;
    $("status").classList.toggle("warn", !!warn);
  };

  function load() {
    try {
      const saved = JSON.parse(localStorage.getItem(storeKey) || "null");
      if (!saved || !Array.isArray(saved.ranks) || saved.ranks.length !== n) return;
      ranks = saved.ranks.map((r, i) => (validRank(r, i) ? r : []));
      if (typeof saved.rater === "string") $("rater").value = saved.rater;
      const c = saved.current;
      if (Number.isInteger(c) && c >= 0 && c < n) current = c;
    } catch (e) { /* no storage here: start afresh */ }
  }
  function persist() {
    const state = {rater: $("rater").value, ranks, current};
    try { localStorage.setItem(storeKey, JSON.stringify(state)); }
    catch (e) { /* no storage or full: the page still works until it is closed */ }
  }

  function show(i) {
    const hadFocus = $("options").contains(document.activeElement);
    current = i;
    const item = items[i];
    $("face-title").textContent = `Face ${i + 1} of ${n}`;
    $("ref").hidden = !item.lr;
    if (item.lr) $("ref").querySelector("img").src = item.lr;
    buttons = item.options.map((opt, j) => {
      const b = el("button", "option"), img = el("img"), cap = el("span", "cap");
      b.type = "button";
      img.src = opt.src;
      img.alt = "";
      cap.append(el("span", "letter", LETTERS[j]), el("span", "rank"));
      b.append(img, cap);
      b.addEventListener("click", () => toggle(j));
      return b;
    });
    $("options").replaceChildren(...buttons);
    if (hadFocus) buttons[0].focus();  // keyboard users stay among the pictures
    persist();
    refresh();
  }

  function refresh() {
    const r = ranks[current];
    buttons.forEach((b, j) => {
      const pos = r.indexOf(j), label = pos >= 0 ? ordinal(pos + 1) : "";
      b.setAttribute("aria-pressed", String(pos >= 0));
      const state = label ? `ranked ${label}` : "not ranked yet";
      b.setAttribute("aria-label", `Picture ${LETTERS[j]}, ${state}`);
      b.querySelector(".rank").textContent = label;
    });
    $("hint").textContent = complete(current)
      ? "Ranked. Press Enter or Next for the next face."
      : `Choose the ${r.length ? ordinal(r.length + 1) + " best" : "best"} picture `
        + "(click it or press its letter).";
    $("prev").disabled = current === 0;
    $("next").disabled = current === n - 1;
    const done = items.filter((_, i) => complete(i)).length;
    $("bar").max = n;
    $("bar").value = done;
    $("done").textContent = `${done} of ${n} faces ranked`;
    const nav = $("faces");
    if (nav.children.length !== n) {
      nav.replaceChildren(...items.map((_, i) => {
        const b = el("button", "", String(i + 1));
        b.type = "button";
        b.addEventListener("click", () => show(i));
        return b;
      }));
    }
    [...nav.children].forEach((b, i) => {
      b.classList.toggle("done", complete(i));
      b.setAttribute("aria-label", `Face ${i + 1}, ${complete(i) ? "ranked" : "not ranked"}`);
      if (i === current) b.setAttribute("aria-current", "step");
      else b.removeAttribute("aria-current");
    });
  }

  function toggle(j) {
    const r = ranks[current], pos = r.indexOf(j);
    if (pos >= 0) r.splice(pos, 1); else r.push(j);
    say("");
    persist();
    refresh();
  }
  const undo = () => { ranks[current].pop(); persist(); refresh(); };
  const clear = () => { ranks[current] = []; persist(); refresh(); };
  const go = (d) => { if (current + d >= 0 && current + d < n) show(current + d); };

  function save() {
    const name = $("rater").value.trim();
    if (!name) { say("Not saved: enter your name first.", true); $("rater").focus(); return; }
    const missing = items.map((_, i) => i).filter((i) => !complete(i));
    if (missing.length) {
      const list = missing.slice(0, 10).map((i) => i + 1).join(", ")
        + (missing.length > 10 ? ", ..." : "");
      say(`Not saved: ${missing.length} of ${n} faces are not fully ranked (face ${list}).`, true);
      show(missing[0]);
      return;
    }
    const record = {format: data.format, version: data.version, study: data.study, rater: name,
      saved: new Date().toISOString(),
      rankings: items.map((it, i) => ({image: it.image,
                                       ranking: ranks[i].map((j) => it.options[j].token)}))};
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") || "rater";
    const a = el("a");
    const text = JSON.stringify(record, null, 2) + "\n";
    a.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
    a.download = `rankings-${data.study}-${slug}.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    say(`Saved ${a.download} (${n} faces). Send this file to the study organiser.`);
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target instanceof HTMLInputElement) return;
    const k = e.key, j = k.length === 1 ? LETTERS.indexOf(k.toUpperCase()) : -1;
    if (j >= 0 && j < items[current].options.length) toggle(j);
    else if (k === "Backspace") undo();
    else if (k === "ArrowRight") go(1);
    else if (k === "Enter" && !(e.target instanceof HTMLButtonElement)) go(1);
    else if (k === "ArrowLeft") go(-1);
    else return;
    e.preventDefault();
  });
  $("prev").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", clear);
  $("save").addEventListener("click", save);
  $("rater").addEventListener("input", persist);
  const size = $("size");
  // start at the pictures' own width, or smaller so that one face's pictures fit the window
  const shown = items[0].options.length + (items[0].lr ? 1 : 0);
  const fit = Math.floor((window.innerWidth - 48) / shown) - 40;
  size.value = String(Math.max(96, Math.min(data.size, fit)));
  const setSize = () => document.documentElement.style.setProperty("--size", size.value + "px");
  size.addEventListener("input", setSize);
  setSize();
  load();
  show(current);
})();
"""
