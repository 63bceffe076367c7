// limbseg GUI: tabs Segment / Prepare / Train / Models over the JSON API in limbseg/gui/app.py.
// Slices and meshes are drawn by NiiVue (static/vendor/niivue.umd.js, installed by scripts/fetch-gui-assets.sh).
"use strict";
const $ = (id) => document.getElementById(id);
const NV = window.niivue;

async function api(method, url, body) {
  const opts = { method, headers: {} };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  const r = await fetch(url, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : r.statusText);
  return data;
}
const fileUrl = (job, rel) => `/api/jobs/${job}/files/${rel}`;
function showError(id, err) { const e = $(id); e.textContent = err ? String(err.message || err) : ""; e.classList.toggle("hidden", !err); }
function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) >= 100 ? 1 : 3);
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return Array.isArray(v) && v.every((x) => typeof x === "number") ? v.map((x) => x.toFixed(1)).join(", ") : JSON.stringify(v);
  return String(v);
}
function fillTable(table, rows, formats = {}) {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  table.tHead.innerHTML = "<tr>" + cols.map((c) => `<th>${c}</th>`).join("") + "</tr>";
  table.tBodies[0].innerHTML = "";
  for (const r of rows) {
    const tr = table.tBodies[0].insertRow();
    for (const c of cols) {
      const td = tr.insertCell(); td.textContent = (formats[c] || fmt)(r[c]);
      if (typeof r[c] === "number") td.className = "num";
    }
  }
}

// ---- polling a job until it ends ----
async function poll(jobId, prefix, onDone) {
  const bar = $(prefix + "-progress"), msg = $(prefix + "-message");
  for (;;) {
    let job;
    try { job = await api("GET", `/api/jobs/${jobId}`); } catch (e) { showError(prefix + "-error", e); return; }
    bar.value = job.progress || 0; msg.textContent = `${job.state}${job.message ? ": " + job.message : ""}`;
    if (onDone.tick) await onDone.tick(job);
    if (job.state === "done") { showError(prefix + "-error", null); await onDone(job); return; }
    if (job.state === "failed") { showError(prefix + "-error", job.error); return; }
    if (job.state === "new") return;
    await new Promise((res) => setTimeout(res, 700));
  }
}

// ---- viewers ----
function labelColormap(labels) {
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: ["background"] };
  for (const s of (labels && labels.structures) || []) {
    cm.R.push(s.color[0]); cm.G.push(s.color[1]); cm.B.push(s.color[2]); cm.A.push(255); cm.I.push(s.value); cm.labels.push(s.name);
  }
  return cm;
}
const viewers = {};
window.limbsegViewers = viewers;  // for the browser tests
async function viewer(canvasId) {
  if (!NV) return null;
  if (!viewers[canvasId]) {
    const nv = new NV.Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true, isResizeCanvas: true });
    await nv.attachToCanvas($(canvasId));
    viewers[canvasId] = nv;
  }
  return viewers[canvasId];
}
async function showVolumes(canvasId, scanUrl, labelUrl, labels, opacity, sliceType) {
  const nv = await viewer(canvasId);
  if (!nv) return;
  const list = [{ url: scanUrl, name: "scan.nii.gz" }];
  if (labelUrl) list.push({ url: labelUrl, name: "labels.nii.gz", opacity });
  await nv.loadVolumes(list);
  if (labelUrl) { nv.volumes[1].setColormapLabel(labelColormap(labels)); nv.updateGLVolume(); }
  nv.setSliceType(sliceType);
}

// ---- Segment tab ----
const seg = { job: null, series: null };
function modelChoice() { return localStorage.getItem("limbseg.model") || ""; }
async function segUpload() {
  const files = $("seg-files").files;
  if (!files.length) return showError("seg-error", "choose a file first");
  const fd = new FormData();
  for (const f of files) fd.append("files", f);
  $("seg-message").textContent = "uploading…"; showError("seg-error", null);
  try { segOpen(await api("POST", "/api/segment/upload", fd)); } catch (e) { $("seg-message").textContent = ""; showError("seg-error", e); }
}
function segOpen(job) {
  seg.job = job.id; sessionStorage.setItem("limbseg.segJob", job.id);
  const rows = job.params.series || [];
  $("seg-series-box").classList.toggle("hidden", rows.length === 0);
  const body = $("seg-series").tBodies[0]; body.innerHTML = "";
  rows.forEach((s, n) => {
    const tr = body.insertRow();
    tr.innerHTML = `<td><input type="radio" name="series" value="${n}" ${n === 0 ? "checked" : ""}></td>`;
    for (const v of [s.description, s.orientation, s.slices, s.size]) tr.insertCell().textContent = fmt(v);
  });
  seg.series = rows;
  $("seg-run").disabled = false;
  $("seg-message").textContent = job.state === "new" ? "uploaded: choose the series and press Segment" : job.state;
  $("seg-results").classList.add("hidden");
  if (job.state !== "new") poll(job.id, "seg", segShow);
}
async function segRun() {
  const pick = document.querySelector('input[name="series"]:checked');
  const body = { model_id: modelChoice() || null, tta: $("seg-tta").checked,
                 series_uid: pick && seg.series.length ? seg.series[+pick.value].uid : null,
                 roi_start_mm: $("seg-roi-start").value === "" ? null : +$("seg-roi-start").value,
                 roi_end_mm: $("seg-roi-end").value === "" ? null : +$("seg-roi-end").value };
  try { await api("POST", `/api/jobs/${seg.job}/segment`, body); } catch (e) { return showError("seg-error", e); }
  $("seg-results").classList.add("hidden");
  poll(seg.job, "seg", segShow);
}
async function segShow(job) {
  const r = job.result, id = job.id;
  $("seg-results").classList.remove("hidden");
  fillTable($("seg-stats"), r.statistics || []);
  const measured = r.measurements || [];  // per side: measurement, value (or "incomplete"), unit, reason
  fillTable($("seg-measurements"), measured, { value: (v) => (typeof v === "number" ? v.toFixed(1) : fmt(v)) });
  $("seg-measurements").classList.toggle("hidden", !measured.length);
  $("seg-measurements-none").classList.toggle("hidden", !!measured.length);
  $("seg-zip").href = `/api/jobs/${id}/outputs.zip`;
  $("seg-files-list").innerHTML = (r.files || []).map((f) => `<li><a href="${fileUrl(id, f)}" download>${f.replace(/^output\//, "")}</a></li>`).join("");
  await showVolumes("seg-viewer", fileUrl(id, "view/scan.nii.gz"), fileUrl(id, "output/labels.nii.gz"), r.labels,
                    +$("seg-opacity").value, +$("seg-view").value);
  const nv3 = await viewer("seg-mesh-viewer");
  if (nv3 && (r.meshes || []).length) {
    const colors = {};
    for (const s of (r.labels && r.labels.structures) || []) colors[s.name] = s.color;
    await nv3.loadMeshes(r.meshes.map((m) => ({ url: fileUrl(id, m.url), name: m.name + ".ply",
      rgba255: [...(colors[m.name.split("_")[0]] || [200, 200, 200]), 255] })));
    nv3.setSliceType(nv3.sliceTypeRender);
  }
  document.body.dataset.segDone = id;
}
async function segRecent() {
  const jobs = await api("GET", "/api/jobs?kind=segment");
  const sel = $("seg-recent");
  sel.innerHTML = '<option value="">a recent job…</option>' + jobs.map((j) =>
    `<option value="${j.id}">${new Date(j.created * 1000).toLocaleString()} · ${j.state}</option>`).join("");
}

// ---- Prepare tab ----
const STRUCTURES = ["tibia", "femur", "fibula", "pelvis"];
function prepAddCase() {
  const body = $("prep-cases").tBodies[0], n = body.rows.length;
  const tr = body.insertRow();
  tr.innerHTML = `<td>case_${String(n + 1).padStart(3, "0")}</td><td><input type="file" class="prep-scan"></td>` +
    STRUCTURES.map((s) => `<td><input type="file" class="prep-mask" data-structure="${s}" title="mask (.nii.gz/.nrrd) or mesh (.ply/.stl)"></td>`).join("");
}
async function prepSubmit(fd, url) {
  showError("prep-error", null); $("prep-report").innerHTML = ""; $("prep-view-box").classList.add("hidden");
  try { const job = await api("POST", url, fd); sessionStorage.setItem("limbseg.prepJob", job.id); poll(job.id, "prep", prepShow); }
  catch (e) { showError("prep-error", e); }
}
function prepManifest() {
  const f = $("prep-manifest").files[0];
  if (!f) return showError("prep-error", "choose a manifest first");
  const fd = new FormData(); fd.append("manifest", f); prepSubmit(fd, "/api/prepare/manifest");
}
function prepCases() {
  const fd = new FormData();
  [...$("prep-cases").tBodies[0].rows].forEach((tr, n) => {
    const scan = tr.querySelector(".prep-scan").files[0];
    if (!scan) return;
    fd.append("scans", scan);
    for (const inp of tr.querySelectorAll(".prep-mask")) if (inp.files[0]) {
      fd.append("masks", inp.files[0]); fd.append("mask_case", n); fd.append("mask_structure", inp.dataset.structure);
    }
  });
  if (!fd.has("scans")) return showError("prep-error", "add at least one case with a scan");
  prepSubmit(fd, "/api/prepare/cases");
}
async function prepShow(job) {
  const checks = job.result.checks, box = $("prep-report");
  if (Array.isArray(checks) && checks.length) {
    box.innerHTML = "<h3>Per-case checks</h3><table id='prep-checks'><thead></thead><tbody></tbody></table>";
    fillTable($("prep-checks"), checks);
  } else box.innerHTML = `<h3>Report</h3><pre>${JSON.stringify(job.result.report, null, 1)}</pre>`;
  const data = await api("GET", `/api/jobs/${job.id}/dataset`);
  if (!data.cases.length) return;
  prep.job = job.id; prep.cases = data.cases; prep.labels = data.dataset && data.dataset.labels;
  $("prep-case").innerHTML = data.cases.map((c, n) => `<option value="${n}">${c.case}</option>`).join("");
  $("prep-view-box").classList.remove("hidden");
  prepView();
}
const prep = {};
async function prepView() {
  const c = prep.cases[+$("prep-case").value], mode = $("prep-mode").value;
  const labels = prep.labels ? { structures: Object.entries(prep.labels).filter(([, v]) => v > 0)
    .map(([name, value], n) => ({ name, value, color: [[230, 159, 0], [86, 180, 233], [0, 158, 115], [204, 121, 167], [240, 228, 66]][n % 5] })) } : null;
  await showVolumes("prep-viewer", fileUrl(prep.job, c.image), c.label ? fileUrl(prep.job, c.label) : null, labels,
                    mode === "both" ? 0.5 : 1, +$("prep-view").value);
  const nv = viewers["prep-viewer"];
  if (nv && nv.volumes.length > 1) { nv.volumes[0].opacity = mode === "mask" ? 0 : 1; nv.volumes[1].opacity = mode === "scan" ? 0 : (mode === "both" ? 0.5 : 1); nv.updateGLVolume(); }
}

// ---- Train tab ----
async function trainLoad() {
  const [datasets, models] = await Promise.all([api("GET", "/api/datasets"), api("GET", "/api/models")]);
  $("train-dataset").innerHTML = datasets.map((d) => `<option value="${d.id}">${d.name} (${d.cases} cases)</option>`).join("") || "<option value=''>no dataset: use the Prepare tab</option>";
  $("train-init").innerHTML = '<option value="">(train from scratch)</option>' + models.map((m) => `<option value="${m.id}">${m.name}</option>`).join("");
}
async function trainStart() {
  const body = { dataset_id: $("train-dataset").value, encoder: $("train-encoder").value, folds: $("train-folds").value || null,
                 epochs: +$("train-epochs").value, init_from: $("train-init").value || null };
  showError("train-error", null);
  try { const job = await api("POST", "/api/train", body); sessionStorage.setItem("limbseg.trainJob", job.id); trainWatch(job.id); }
  catch (e) { showError("train-error", e); }
}
function trainWatch(id) {
  const update = async () => {
    const h = await api("GET", `/api/jobs/${id}/history`);
    drawCurves($("train-loss"), h.history, (k) => /loss/i.test(k));
    drawCurves($("train-dsc"), h.history, (k) => /dsc|dice/i.test(k));
    const folds = h.summary && (h.summary.folds || h.summary.per_fold);
    if (Array.isArray(folds)) fillTable($("train-folds-table"), folds);
  };
  const done = async () => { await update(); modelsLoad(); };
  done.tick = update;
  poll(id, "train", done);
}
function drawCurves(canvas, rows, pick) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 36;
  ctx.clearRect(0, 0, W, H);
  if (!rows || !rows.length) return;
  const keys = Object.keys(rows[0]).filter((k) => pick(k) && typeof rows[0][k] === "number");
  const groups = {};
  for (const r of rows) (groups[r.fold ?? 0] ||= []).push(r);
  const xs = rows.map((r, n) => r.epoch ?? n), ys = rows.flatMap((r) => keys.map((k) => r[k])).filter((v) => typeof v === "number");
  if (!ys.length) return;
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys, 0), y1 = Math.max(...ys);
  const X = (x) => pad + (x - x0) / (x1 - x0) * (W - 2 * pad), Y = (y) => H - pad - (y - y0) / ((y1 - y0) || 1) * (H - 2 * pad);
  ctx.strokeStyle = "#999"; ctx.strokeRect(pad, pad, W - 2 * pad, H - 2 * pad);
  ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
  ctx.fillText(fmt(y1), 2, pad + 4); ctx.fillText(fmt(y0), 2, H - pad); ctx.fillText("epoch", W / 2, H - 8);
  const palette = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];
  let n = 0;
  for (const [fold, g] of Object.entries(groups)) for (const k of keys) {
    ctx.strokeStyle = palette[n % palette.length]; ctx.beginPath();
    g.forEach((r, i) => { const x = X(r.epoch ?? i), y = Y(r[k]); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke(); ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(`${Object.keys(groups).length > 1 ? "fold " + fold + " " : ""}${k}`, W - pad - 150, pad + 14 + 12 * n++);
  }
}

// ---- Models tab ----
let modelsRequest = 0, modelsShown = null;
async function modelsLoad() {
  const request = ++modelsRequest;
  document.body.dataset.modelsLoading = "1";
  let models = [];
  try { models = await api("GET", "/api/models"); } catch (e) { $("model-card").textContent = String(e.message); }
  if (request !== modelsRequest) return;  // a newer refresh is on its way: render only the latest list
  delete document.body.dataset.modelsLoading;
  const shown = JSON.stringify(models);
  if (shown === modelsShown) return;  // unchanged: keep the rows, so a choice being clicked is not thrown away
  modelsShown = shown;
  const chosen = modelChoice();
  const body = $("models-table").tBodies[0];
  body.innerHTML = `<tr><td><input type="radio" name="model" value="" ${chosen ? "" : "checked"}></td><td>default (shipped)</td><td colspan="4"></td></tr>`;
  for (const m of models) {
    const tr = body.insertRow();
    const metrics = m.metrics || m.metrics_summary || {};
    tr.innerHTML = `<td><input type="radio" name="model" value="${m.id}" ${m.id === chosen ? "checked" : ""}></td>` +
      `<td><a href="#" data-card="${m.id}">${m.name}</a></td><td>${fmt(m.created)}</td><td>${fmt(m.encoder)}</td><td>${fmt(m.labels)}</td><td>${fmt(metrics)}</td>`;
    if (m.id === chosen) $("seg-model-name").textContent = m.name;
  }
  body.querySelectorAll("input[name=model]").forEach((r) => r.addEventListener("change", () => {
    localStorage.setItem("limbseg.model", r.value);
    const m = models.find((x) => x.id === r.value); $("seg-model-name").textContent = m ? m.name : "default";
  }));
  body.querySelectorAll("a[data-card]").forEach((a) => a.addEventListener("click", async (ev) => {
    ev.preventDefault(); $("model-card").textContent = JSON.stringify(await api("GET", `/api/models/${a.dataset.card}`), null, 2);
  }));
}

// ---- start ----
function switchTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => s.classList.toggle("hidden", s.id !== "tab-" + name));
  if (name === "train") trainLoad();
  if (name === "models") modelsLoad();
}
async function start() {
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => switchTab(b.dataset.tab)));
  $("seg-upload").addEventListener("click", segUpload);
  $("seg-run").addEventListener("click", segRun);
  $("seg-recent").addEventListener("change", async (e) => { if (e.target.value) segOpen(await api("GET", `/api/jobs/${e.target.value}`)); });
  $("seg-opacity").addEventListener("input", (e) => { const nv = viewers["seg-viewer"]; if (nv && nv.volumes[1]) nv.setOpacity(1, +e.target.value); });
  $("seg-view").addEventListener("change", (e) => { const nv = viewers["seg-viewer"]; if (nv) nv.setSliceType(+e.target.value); });
  $("prep-add").addEventListener("click", prepAddCase); prepAddCase();
  $("prep-manifest-go").addEventListener("click", prepManifest);
  $("prep-cases-go").addEventListener("click", prepCases);
  for (const id of ["prep-case", "prep-mode", "prep-view"]) $(id).addEventListener("change", prepView);
  $("train-go").addEventListener("click", trainStart);
  const info = await api("GET", "/api/info");
  $("version").textContent = "limbseg " + info.version;
  $("viewer-missing").classList.toggle("hidden", !!(info.viewer && NV));
  modelsLoad(); segRecent();
  const segJob = sessionStorage.getItem("limbseg.segJob");
  if (segJob) api("GET", `/api/jobs/${segJob}`).then(segOpen).catch(() => sessionStorage.removeItem("limbseg.segJob"));
  const prepJob = sessionStorage.getItem("limbseg.prepJob");
  if (prepJob) poll(prepJob, "prep", prepShow);
  const trainJob = sessionStorage.getItem("limbseg.trainJob");
  if (trainJob) trainWatch(trainJob);
}
start();
