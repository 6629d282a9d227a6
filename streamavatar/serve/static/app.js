// streamavatar reference client: no build step, no dependencies.
// Protocol: docs/server.md. State for automated tests is kept in window.sa.
"use strict";

const $ = (id) => document.getElementById(id);
const sa = (window.sa = {
  session: null, ws: null, pc: null, mic: null, events: [], states: [], framesDecoded: 0,
  lastFrameCode: null, speaking: null,
});
const TALK_TAG = 0x54;  // 'T'
const VOICE_RATE = 16000;

function log(line) {
  const el = $("events");
  el.textContent = (line + "\n" + el.textContent).slice(0, 20000);
}

function authHeaders(credential) {
  return credential ? { Authorization: "Bearer " + credential } : {};
}

async function api(method, path, { body, credential, type } = {}) {
  const headers = authHeaders(credential);
  if (type) headers["Content-Type"] = type;
  const r = await fetch(path, { method, headers, body });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error && data.error.message) || r.status + " " + r.statusText);
  return data;
}

function testCard() {
  // A generated reference image, for trying the server without a photo.
  const c = document.createElement("canvas");
  c.width = c.height = 256;
  const g = c.getContext("2d");
  g.fillStyle = "#c8a27a"; g.fillRect(0, 0, 256, 256);
  g.fillStyle = "#f0d0b0"; g.beginPath(); g.ellipse(128, 120, 70, 90, 0, 0, 2 * Math.PI); g.fill();
  g.fillStyle = "#333"; g.fillRect(95, 95, 18, 10); g.fillRect(143, 95, 18, 10);
  g.fillStyle = "#a33"; g.fillRect(108, 165, 40, 10);
  return new Promise((res) => c.toBlob(res, "image/png"));
}

async function listAvatars() {
  const data = await api("GET", "/v1/avatars", { credential: $("apiKey").value });
  const sel = $("avatarSelect");
  sel.length = 1;
  for (const a of data.avatars) sel.add(new Option(`${a.avatar_id} (${a.width}x${a.height})`, a.avatar_id));
}

async function start() {
  $("start").disabled = true;
  try {
    const key = $("apiKey").value;
    let session;
    const file = $("refFile").files[0];
    if (file) {
      session = await api("POST", "/v1/sessions", { body: file, credential: key, type: file.type || "image/png" });
    } else if ($("avatarSelect").value) {
      session = await api("POST", "/v1/sessions", {
        body: JSON.stringify({ avatar_id: $("avatarSelect").value }), credential: key, type: "application/json" });
    } else {
      session = await api("POST", "/v1/sessions", { body: await testCard(), credential: key, type: "image/png" });
    }
    sa.session = session;
    $("frameCodeRow").hidden = !session.frame_codes;
    sessionStorage.setItem("streamavatar.session", JSON.stringify(session));
    await connect();
  } catch (e) {
    $("status").textContent = "error: " + e.message;
    $("start").disabled = false;
  }
}

async function connect() {
  const s = sa.session;
  openSocket(s);
  await openPeer(s);
  for (const id of ["stop", "speak", "interrupt", "listenOn", "listenOff", "listenAuto", "reconnect"]) $(id).disabled = false;
}

function openSocket(s) {
  if (sa.ws) sa.ws.close();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}${s.ws_url}?token=${encodeURIComponent(s.token)}`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onclose = (e) => log(`websocket closed (${e.code})`);
  sa.ws = ws;
  return new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
}

function onEvent(e) {
  sa.events.push(e);
  if (e.type !== "metrics") log(`${e.media_time_s?.toFixed?.(2) ?? ""} ${e.type} ${JSON.stringify(stripCommon(e))}`);
  if (e.type === "state" || e.type === "hello") {
    if (e.state) { sa.states.push(e.state); $("state").textContent = e.state; }
  } else if (e.type === "metrics") {
    const m = e.metrics;
    $("mediaTime").textContent = m.media_time_s.toFixed(2) + " s (frame " + m.frame + ")";
    $("fps").textContent = m.fps.toFixed(1) + " / " + m.rtf.toFixed(3);
    $("behind").textContent = m.repeated_frames + " / " + Math.round(m.dropped_talk_frames);
    if (m.ttff_last_s != null) $("ttff").textContent = (1000 * m.ttff_last_s).toFixed(0) + " ms";
  } else if (e.type === "interrupt_done") {
    $("interruptLatency").textContent = (1000 * e.latency_s).toFixed(0) + " ms";
  } else if (e.type === "session_ended") {
    $("status").textContent = "session ended: " + e.reason;
  }
}

function stripCommon(e) {
  const { type, session_id, media_time_s, metrics, ...rest } = e;
  return rest;
}

async function openPeer(s) {
  if (sa.pc) sa.pc.close();
  const pc = new RTCPeerConnection({ iceServers: s.ice_servers || [] });
  sa.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  if ($("micOn").checked) {
    if (!sa.mic) {
      sa.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 } });
    }
    for (const t of sa.mic.getAudioTracks()) pc.addTrack(t, sa.mic);
  } else {
    pc.addTransceiver("audio", { direction: "recvonly" });
  }
  const stream = new MediaStream();
  pc.ontrack = (ev) => { stream.addTrack(ev.track); $("video").srcObject = stream; };
  pc.onconnectionstatechange = () => { $("status").textContent = "webrtc " + pc.connectionState; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((res) => {
    if (pc.iceGatheringState === "complete") return res();
    const t = setTimeout(res, 2000);
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") { clearTimeout(t); res(); } };
  });
  const answer = await api("POST", s.offer_url, {
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }), credential: s.token, type: "application/json" });
  await pc.setRemoteDescription(answer);
  watchFrames();
}

function watchFrames() {
  const video = $("video");
  const canvas = $("probe");
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const onFrame = () => {
    if (video.videoWidth) {
      sa.framesDecoded += 1;
      $("framesDecoded").textContent = sa.framesDecoded;
      canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      g.drawImage(video, 0, 0);
      if (sa.session && sa.session.frame_codes) {
        sa.lastFrameCode = readCode(g, canvas.width, 0);
        $("frameCode").textContent = sa.lastFrameCode;
      }
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

function readCode(g, width, row) {
  // The fake generator writes integers as 32 black/white blocks (streamavatar/serve/frame_code.py).
  const b = Math.floor(width / 32);
  const px = g.getImageData(0, row * b, 32 * b, b).data;
  let v = 0;
  for (let bit = 0; bit < 32; bit++) {
    const x = bit * b + Math.floor(b / 2), y = Math.floor(b / 2);
    const i = 4 * (y * 32 * b + x);
    v = v * 2 + ((px[i] + px[i + 1] + px[i + 2]) / 3 > 127 ? 1 : 0);
  }
  return v;
}

async function voicePcm(file) {
  const ctx = new AudioContext();
  const decoded = await ctx.decodeAudioData(await file.arrayBuffer());
  ctx.close();
  const off = new OfflineAudioContext(1, Math.ceil(decoded.duration * VOICE_RATE), VOICE_RATE);
  const src = off.createBufferSource();
  src.buffer = decoded; src.connect(off.destination); src.start();
  const f32 = (await off.startRendering()).getChannelData(0);
  const pcm = new Int16Array(f32.length);
  for (let i = 0; i < f32.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(f32[i] * 32767)));
  return pcm;
}

async function speak() {
  const file = $("voiceFile").files[0];
  if (!file) { $("status").textContent = "pick a WAV file for the agent voice first"; return; }
  const pcm = await voicePcm(file);
  const ws = sa.ws;
  const job = { cancelled: false };
  if (sa.speaking) sa.speaking.cancelled = true;
  sa.speaking = job;
  ws.send(JSON.stringify({ type: "speak_start", sample_rate: VOICE_RATE }));
  // Stream it like a text-to-speech would: 100 ms pieces at twice real time.
  const piece = VOICE_RATE / 10;
  for (let i = 0; i < pcm.length && !job.cancelled; i += piece) {
    const part = pcm.subarray(i, Math.min(pcm.length, i + piece));
    const msg = new Uint8Array(1 + 2 * part.length);
    msg[0] = TALK_TAG;
    const view = new DataView(msg.buffer);
    for (let k = 0; k < part.length; k++) view.setInt16(1 + 2 * k, part[k], true);
    ws.send(msg);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!job.cancelled) ws.send(JSON.stringify({ type: "speak_end" }));
}

function interrupt() {
  if (sa.speaking) sa.speaking.cancelled = true;
  sa.ws.send(JSON.stringify({ type: "interrupt" }));
}

async function stop() {
  if (sa.speaking) sa.speaking.cancelled = true;
  const s = sa.session;
  if (sa.pc) sa.pc.close();
  if (sa.ws) sa.ws.close();
  if (s) await api("DELETE", "/v1/sessions/" + s.session_id, { credential: s.token }).catch(() => {});
  sessionStorage.removeItem("streamavatar.session");
  sa.session = null;
  $("start").disabled = false;
  $("status").textContent = "stopped";
}

async function reconnect() {
  const saved = sa.session || JSON.parse(sessionStorage.getItem("streamavatar.session") || "null");
  if (!saved) return;
  sa.session = saved;
  try { await connect(); } catch (e) { $("status").textContent = "reconnect failed: " + e.message; }
}

$("start").onclick = start;
$("stop").onclick = stop;
$("reconnect").onclick = reconnect;
$("speak").onclick = speak;
$("interrupt").onclick = interrupt;
$("listAvatars").onclick = () => listAvatars().catch((e) => { $("status").textContent = "error: " + e.message; });
$("listenOn").onclick = () => sa.ws.send(JSON.stringify({ type: "start_listening" }));
$("listenOff").onclick = () => sa.ws.send(JSON.stringify({ type: "stop_listening" }));
$("listenAuto").onclick = () => sa.ws.send(JSON.stringify({ type: "auto_listening" }));
if (sessionStorage.getItem("streamavatar.session")) $("reconnect").disabled = false;
