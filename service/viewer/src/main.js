// The MotionLift web viewer: a file goes to POST /lift/file (or a MotionLift answer is read as it is), then the 2D
// input plays beside the 3D skeleton. three.js draws the 3D view (orbit camera, ground grid, one colour per track);
// a 2D canvas draws the input. The API key, when given, stays in this tab's sessionStorage only.
// window.motionlift exposes the state for tests (frames, tracks, jointsDrawn, frame, playing).
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";

const COLOURS = [0x4287f5, 0xf58230, 0x3cb44b, 0xe6194b, 0x911eb4, 0x46f0f0];
const H36M_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15];
const COCO_EDGES = [[5, 7], [7, 9], [6, 8], [8, 10], [5, 6], [5, 11], [6, 12], [11, 12], [11, 13], [13, 15],
  [12, 14], [14, 16], [0, 5], [0, 6]];
const H36M_EDGES = H36M_PARENTS.map((p, c) => [p, c]).filter(([p]) => p >= 0);

const $ = (id) => document.getElementById(id);
const state = { frames: 0, tracks: [], jointsDrawn: 0, frame: 0, playing: false, ready: false, error: null };
window.motionlift = state;

const keyInput = $("key");
keyInput.value = sessionStorage.getItem("motionlift-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("motionlift-key", keyInput.value));

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
  if (error) state.error = text;
}

// --- 3D view --------------------------------------------------------------------------------------------
const canvas3d = $("view3d");
const renderer = new THREE.WebGLRenderer({ canvas: canvas3d, antialias: true, preserveDrawingBuffer: true });
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x121218);
const camera = new THREE.PerspectiveCamera(45, 1, 0.01, 100);
camera.position.set(2.2, 1.4, 3.2);
const controls = new OrbitControls(camera, canvas3d);
controls.target.set(0, 0.8, 0);
controls.update();
const grid = new THREE.GridHelper(6, 24, 0x555566, 0x2a2a36);
scene.add(grid);
let figures = [];

function resize() {
  for (const c of [canvas3d, $("view2d")]) {
    const { clientWidth: w, clientHeight: h } = c;
    if (c === canvas3d) {
      renderer.setSize(w, h, false);
      camera.aspect = w / Math.max(h, 1);
      camera.updateProjectionMatrix();
    } else {
      c.width = w;
      c.height = h;
    }
  }
}
window.addEventListener("resize", resize);

function figure(colour) {
  const joints = new THREE.InstancedMesh(new THREE.SphereGeometry(0.025, 10, 8),
    new THREE.MeshBasicMaterial({ color: 0xeeeeee }), 17);
  const bones = new THREE.LineSegments(new THREE.BufferGeometry(), new THREE.LineBasicMaterial({ color: colour }));
  bones.geometry.setAttribute("position", new THREE.BufferAttribute(new Float32Array(H36M_EDGES.length * 6), 3));
  scene.add(joints, bones);
  return { joints, bones };
}

// Answers are camera space (x right, y down, z away) in the answer's units; the scene is y up, in metres-like
// units: flip y and z, scale so the tallest pose stands 1.7 high, and stand the sequence on the grid (its lowest
// joint at y = 0), centred on its mean root.
function placement(tracks) {
  let low = Infinity, high = -Infinity, cx = 0, cz = 0, n = 0;
  for (const t of tracks) for (const pose of t.joints3d) {
    for (const [, y] of pose) { low = Math.min(low, -y); high = Math.max(high, -y); }
    cx += pose[0][0]; cz += -pose[0][2]; n += 1;
  }
  const s = high > low ? 1.7 / (high - low) : 1;
  return { s, dy: -low * s, cx: (cx / n) * s, cz: (cz / n) * s };
}

// --- 2D view --------------------------------------------------------------------------------------------
function draw2d(frame) {
  const c = $("view2d"), g = c.getContext("2d");
  g.fillStyle = "#121218";
  g.fillRect(0, 0, c.width, c.height);
  const { box } = state;
  if (!box) return;
  const scale = 0.9 * Math.min(c.width / box.w, c.height / box.h);
  const ox = c.width / 2 - (box.x + box.w / 2) * scale, oy = c.height / 2 - (box.y + box.h / 2) * scale;
  state.tracks.forEach((t, n) => {
    const i = frame - t.start;
    if (!t.keypoints || i < 0 || i >= t.keypoints.length) return;
    const pose = t.keypoints[i];
    const edges = pose.length === 17 && state.format === "h36m" ? H36M_EDGES : COCO_EDGES;
    g.strokeStyle = "#" + COLOURS[n % COLOURS.length].toString(16).padStart(6, "0");
    g.lineWidth = 3;
    for (const [a, b] of edges) {
      if (!pose[a] || !pose[b] || pose[a][2] === 0 || pose[b][2] === 0) continue;
      g.beginPath();
      g.moveTo(pose[a][0] * scale + ox, pose[a][1] * scale + oy);
      g.lineTo(pose[b][0] * scale + ox, pose[b][1] * scale + oy);
      g.stroke();
    }
  });
}

// --- playback -------------------------------------------------------------------------------------------
const matrix = new THREE.Matrix4();
function show(frame) {
  state.frame = frame;
  let drawn = 0;
  const { s, dy, cx, cz } = state.place;
  state.tracks.forEach((t, n) => {
    const f = figures[n], i = frame - t.start, visible = i >= 0 && i < t.joints3d.length;
    f.joints.visible = f.bones.visible = visible;
    if (!visible) return;
    const pose = t.joints3d[i].map(([x, y, z]) => [x * s - cx, -y * s + dy, -z * s - cz]);
    pose.forEach((p, j) => f.joints.setMatrixAt(j, matrix.makeTranslation(p[0], p[1], p[2])));
    f.joints.instanceMatrix.needsUpdate = true;
    const positions = f.bones.geometry.attributes.position;
    H36M_EDGES.forEach(([a, b], e) => {
      positions.setXYZ(2 * e, ...pose[a]);
      positions.setXYZ(2 * e + 1, ...pose[b]);
    });
    positions.needsUpdate = true;
    drawn += pose.length;
  });
  state.jointsDrawn = drawn;
  draw2d(frame);
  $("timeline").value = String(frame);
  $("frame").textContent = `${frame + 1} / ${state.frames}`;
}

let last = performance.now(), clock = 0;
function tick(now) {
  const dt = (now - last) / 1000;
  last = now;
  if (state.playing && state.frames > 0) {
    clock += dt * 30 * Number($("speed").value);
    if (clock >= 1) {
      show((state.frame + Math.floor(clock)) % state.frames);
      clock -= Math.floor(clock);
    }
  }
  controls.update();
  renderer.render(scene, camera);
  requestAnimationFrame(tick);
}

function load(answer, input) {
  for (const f of figures) scene.remove(f.joints, f.bones);
  const tracks = answer.tracks || [{ id: "0", start: 0, joints3d: answer.joints3d }];
  const sent = input && input.tracks ? Object.fromEntries(input.tracks.map((t) => [String(t.id), t])) : {};
  state.tracks = tracks.map((t) => ({ ...t, start: t.start || 0, keypoints: (sent[String(t.id)] || {}).keypoints }));
  state.format = (answer.input || {}).format;
  state.frames = Math.max(...state.tracks.map((t) => t.start + t.joints3d.length));
  state.place = placement(state.tracks);
  const points = state.tracks.flatMap((t) => (t.keypoints || []).flat()).filter((p) => p.length < 3 || p[2] > 0);
  if (points.length) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x = Math.min(...xs), y = Math.min(...ys);
    state.box = { x, y, w: Math.max(...xs) - x || 1, h: Math.max(...ys) - y || 1 };
  } else state.box = null;
  figures = state.tracks.map((_, n) => figure(COLOURS[n % COLOURS.length]));
  $("timeline").max = String(state.frames - 1);
  for (const id of ["play", "timeline"]) $(id).disabled = false;
  const ms = answer.latency_ms || {};
  $("latency").textContent = ms.total === undefined ? "" :
    `service ${ms.total.toFixed(1)} ms: preprocess ${ms.preprocess.toFixed(1)}, queue ${ms.queue.toFixed(1)}, ` +
    `inference ${ms.inference.toFixed(1)}, postprocess ${ms.postprocess.toFixed(1)}`;
  state.playing = true;
  state.ready = true;
  $("play").textContent = "Pause";
  resize();
  show(0);
  status(`${state.tracks.length} track(s), ${state.frames} frames`);
}

async function open(file) {
  state.ready = false;
  status(`reading ${file.name}...`);
  const text = file.name.toLowerCase().endsWith(".zip") ? null : await file.text();
  let data = null;
  try { data = text === null ? null : JSON.parse(text); } catch { /* a detector file the service will judge */ }
  if (data && (data.joints3d || (data.tracks && data.tracks[0] && data.tracks[0].joints3d))) {
    load(data, null);  // a MotionLift answer: played as it is
    return;
  }
  const query = new URLSearchParams({ echo_input: "true" });
  if ($("width").value && $("height").value) query.set("image_size", `${$("width").value},${$("height").value}`);
  if ($("min-track-frames").value) query.set("min_track_frames", $("min-track-frames").value);
  const form = new FormData();
  form.append("file", file);
  const headers = keyInput.value ? { authorization: `Bearer ${keyInput.value}` } : {};
  status(`lifting ${file.name}...`);
  const response = await fetch(`/lift/file?${query}`, { method: "POST", body: form, headers });
  const answer = await response.json();
  if (!response.ok) {
    const e = answer.error || {};
    status(`${response.status} ${e.code || ""}${e.field ? " at " + e.field : ""}: ${e.message || ""}`, true);
    return;
  }
  load(answer, answer.input);
}

$("file").addEventListener("change", (e) => e.target.files[0] && open(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) open(e.dataTransfer.files[0]);
});
$("play").addEventListener("click", () => {
  state.playing = !state.playing;
  $("play").textContent = state.playing ? "Pause" : "Play";
});
$("timeline").addEventListener("input", (e) => { state.playing = false; $("play").textContent = "Play"; show(Number(e.target.value)); });
resize();
requestAnimationFrame(tick);
