// Satsuma's window: a join screen and a call screen. Everything here shows
// what the engine reports (`CallEvent`s, as satsuma-headless prints them)
// and sends what the person clicks; no protocol decision is made here.

import { I420Renderer } from "./video.js";

const { invoke, Channel } = window.__TAURI__.core;

interface UiError { kind: string; message: string; hint: string }
interface RecentRoom { room: string; server: string }
interface Startup {
  name: string; room: string; server: string; recent: RecentRoom[];
  profile: string; dir: string; join: boolean; tone: number | null; warnings: string[];
}
interface Hosting { local: string; shared: string[]; intercom: string | null }
interface Joined { fingerprint: string; server: string; hosting: Hosting | null }
interface Devices {
  microphones: string[]; speakers: string[]; cameras: [string, string][];
  microphone: string | null; speaker: string | null; camera: string | null; audio_error: string | null;
}
interface MemberView { leaf: number; name: string; device: string; fingerprint: string; verified: boolean }
interface RemoteStats {
  conn: number; leaf: number | null; name: string | null;
  audio: { packets: number; opened: number; failed: number };
  video: { packets: number; opened: number; failed: number; decoded: number };
}
interface MemberLevel { conn: number; leaf: number | null; name: string | null; dbfs: number; speaking: boolean }
type CallEvent =
  | { event: "joined"; epoch: number; fingerprint: string }
  | { event: "epoch"; epoch: number; safety_number: string; members: MemberView[] }
  | { event: "introduced"; member: MemberView; trust: "first_seen" | "known" | "new_key"; verified?: boolean; previous?: string; was_verified?: boolean }
  | { event: "link"; state: "resumed" | "rejoined" | "closed" }
  | { event: "media"; received: RemoteStats[] }
  | { event: "verified"; member: MemberView }
  | { event: "levels"; own_dbfs: number; members: MemberLevel[] }
  | { event: "devices"; microphone: string | null; speaker: string | null }
  | { event: "audio_codec"; codec: string; intercom: boolean }
  | { event: "error"; message: string; code?: string }
  | { event: "left" }
  | { event: "beep_sent" | "beep_heard" };

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no #${id}`);
  return el as T;
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function asUiError(e: unknown): UiError {
  if (e && typeof e === "object" && "message" in e) return e as UiError;
  return { kind: "failed", message: String(e), hint: "" };
}

// ---- state ----------------------------------------------------------------

interface Tile {
  conn: number; leaf: number | null; name: string; root: HTMLElement; canvas: HTMLCanvasElement;
  renderer: I420Renderer | null; label: HTMLElement; badge: HTMLElement; initial: HTMLElement;
  failed: number; quietReports: number; packets: number; pictures: number;
}

const call = {
  active: false,
  // The join command has not returned yet.
  pending: false,
  // Why the server refused the call while it was being set up.
  refused: null as UiError | null,
  joined: false,
  leaving: false,
  muted: false,
  cameraOn: true,
  room: "",
  epoch: -1,
  safety: "",
  fingerprint: "",
  members: [] as MemberView[],
  trust: new Map<string, string>(), // fingerprint -> first_seen | new_key | known
  tiles: new Map<number, Tile>(),
  events: null as TauriChannel<CallEvent> | null,
};

// ---- join screen ------------------------------------------------------------

function showJoinError(e: UiError) {
  $("join-error-message").textContent = e.message;
  $("join-error-hint").textContent = e.hint;
  $("join-error").hidden = false;
}

function setProgress(text: string | null) {
  const p = $("join-progress");
  p.hidden = text === null;
  p.textContent = text ?? "";
  $<HTMLButtonElement>("join-button").disabled = text !== null;
}

function showScreen(which: "join" | "call") {
  $("join-screen").hidden = which !== "join";
  $("call-screen").hidden = which !== "call";
}

function fillRecent(recent: RecentRoom[]) {
  const list = $("recent-list");
  list.replaceChildren();
  $("recent").hidden = recent.length === 0;
  for (const r of recent) {
    const b = el("button", { type: "button", textContent: r.server ? `${r.room} on ${r.server}` : `${r.room} (hosted here)` });
    b.addEventListener("click", () => {
      $<HTMLInputElement>("room").value = r.room;
      $<HTMLInputElement>("server").value = r.server;
    });
    list.append(el("li", {}, b));
  }
}

async function join() {
  if (call.active) return;
  const name = $<HTMLInputElement>("name").value.trim();
  const room = $<HTMLInputElement>("room").value.trim();
  const server = $<HTMLInputElement>("server").value.trim();
  $("join-error").hidden = true;
  $("toasts").replaceChildren(); // an earlier attempt's news is stale
  if (!name) return showJoinError({ kind: "invalid", message: "Your name is empty.", hint: "Type the name others will see." });
  if (!room) return showJoinError({ kind: "invalid", message: "The room is empty.", hint: "Type a room name; everyone in the call uses the same one." });
  setProgress(server ? `Connecting to ${server}…` : "Starting the call on this computer…");
  const events = new Channel<CallEvent>();
  const frames = new Channel<ArrayBuffer>();
  // A call that ended (or was refused) may still say something on its
  // own channels: only this call's are listened to.
  events.onmessage = (e) => { if (call.events === events) onEvent(e); };
  // An ended call's pictures are not acknowledged: the credit is reset
  // when a call starts (frames.rs).
  frames.onmessage = (f) => { if (call.events === events) onFrame(f); };
  call.events = events;
  Object.assign(call, { active: true, joined: false, leaving: false, muted: false, cameraOn: true, room, epoch: -1, safety: "", members: [] });
  call.trust.clear();
  call.pending = true;
  call.refused = null;
  try {
    const joined = await invoke<Joined>("join", { request: { name, room, server }, events, frames });
    call.pending = false;
    if (call.refused) {
      // Refused (a full room, say) before the call was even set up.
      const refused: UiError = call.refused;
      call.refused = null;
      await invoke("leave").catch(() => undefined);
      backToJoin(refused);
      return;
    }
    call.fingerprint = joined.fingerprint;
    $("own-fingerprint").textContent = joined.fingerprint;
    $("hosting").hidden = joined.hosting === null;
    if (joined.hosting) {
      const where = joined.hosting.shared.length ? joined.hosting.shared.join(", ") : joined.hosting.local;
      $("host-addr").textContent = where;
      $("host-addr").dataset.local = joined.hosting.local;
    }
    if (!call.joined) setProgress("Connected. Waiting to be added to the group (its committer adds you)…");
  } catch (e) {
    call.pending = false;
    call.active = false;
    call.events = null;
    setProgress(null);
    showJoinError(asUiError(e));
  }
}

// ---- call screen -------------------------------------------------------------

function enterCall() {
  call.joined = true;
  setProgress(null);
  $("room-name").textContent = call.room;
  $("grid").replaceChildren();
  call.tiles.clear();
  selfTile();
  $("trust-warnings").replaceChildren();
  $("members").replaceChildren();
  updateButtons();
  showScreen("call");
}

function backToJoin(message: UiError | null) {
  call.active = false;
  call.joined = false;
  call.events = null;
  setProgress(null);
  showScreen("join");
  if (message) showJoinError(message);
  void invoke<Startup>("startup").then((s) => fillRecent(s.recent));
}

function toast(text: string, error = false) {
  const t = el("div", { className: error ? "toast error" : "toast", textContent: text });
  $("toasts").append(t);
  setTimeout(() => t.remove(), 8000);
}

function groups(text: string): string[] {
  return text.split(/\s+/).filter((g) => g.length > 0);
}

function tileFor(conn: number): Tile {
  let tile = call.tiles.get(conn);
  if (tile) return tile;
  const canvas = el("canvas");
  const label = el("span", { className: "label", textContent: "…" });
  const badge = el("span", { className: "badge", textContent: "✓ encrypted" });
  const initial = el("div", { className: "initial", textContent: "?" });
  const root = el("div", { className: "tile" }, canvas, initial, label, badge);
  root.dataset.conn = String(conn);
  tile = { conn, leaf: null, name: "", root, canvas, renderer: null, label, badge, initial, failed: 0, quietReports: 0, packets: 0, pictures: 0 };
  try {
    tile.renderer = new I420Renderer(canvas);
  } catch (e) {
    toast(`video cannot be shown: ${e}`, true);
  }
  call.tiles.set(conn, tile);
  $("grid").append(root);
  return tile;
}

function nameTile(tile: Tile, leaf: number | null, name: string | null) {
  if (leaf !== null) tile.leaf = leaf;
  const member = call.members.find((m) => m.leaf === tile.leaf);
  const shown = name ?? member?.name ?? "";
  if (shown && shown !== tile.name) {
    tile.name = shown;
    tile.label.textContent = shown;
    tile.root.dataset.name = shown;
    tile.initial.textContent = shown.slice(0, 1).toUpperCase();
  }
}

// The connection id of your own picture (frames.rs: SELF_VIEW).
const SELF_VIEW = 0xffffffffffffffffn;

function drawSelf(width: number, height: number, planes: Uint8Array) {
  const root = document.getElementById("self-tile");
  if (!root || !selfView || !call.cameraOn) return;
  selfView.canvas.hidden = false;
  root.querySelector<HTMLElement>(".initial")?.setAttribute("hidden", "");
  selfView.draw(width, height, planes);
  root.dataset.pictures = String(Number(root.dataset.pictures ?? "0") + 1);
}

function onFrame(message: ArrayBuffer) {
  const bytes = message instanceof ArrayBuffer ? new Uint8Array(message) : new Uint8Array(message as unknown as number[]);
  if (bytes.length < 16) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 16);
  const id = view.getBigUint64(0, true);
  try {
    if (!call.joined) return;
    const width = view.getUint32(8, true);
    const height = view.getUint32(12, true);
    if (id === SELF_VIEW) {
      drawSelf(width, height, bytes.subarray(16));
      return;
    }
    const conn = Number(id);
    const tile = tileFor(conn);
    tile.initial.hidden = true;
    tile.renderer?.draw(width, height, bytes.subarray(16));
    tile.pictures += 1;
    tile.root.dataset.pictures = String(tile.pictures);
  } finally {
    // Each source has its own credit (frames.rs).
    void invoke("drawn", { source: id.toString() });
  }
}

function onEvent(e: CallEvent) {
  switch (e.event) {
    case "joined":
      call.fingerprint = e.fingerprint;
      enterCall();
      break;
    case "epoch":
      call.epoch = e.epoch;
      call.safety = e.safety_number;
      call.members = e.members;
      renderEncryption();
      for (const tile of call.tiles.values()) {
        if (tile.leaf !== null && !e.members.some((m) => m.leaf === tile.leaf)) dropTile(tile);
        else nameTile(tile, null, null);
      }
      break;
    case "introduced":
      call.trust.set(e.member.fingerprint, e.trust);
      if (e.trust === "new_key") {
        warn("new-key", `⚠ ${e.member.name} joined with a NEW KEY. The key ${e.member.name} used before ${e.was_verified ? "was verified by you" : "was different"}. This may be another device, or someone pretending to be ${e.member.name}: compare fingerprints before you trust them.`, e.member);
      } else if (e.trust === "first_seen") {
        newToYou(e.member);
      }
      renderEncryption();
      break;
    case "verified":
      call.members = call.members.map((m) => (m.leaf === e.member.leaf ? e.member : m));
      call.trust.set(e.member.fingerprint, "known");
      renderEncryption();
      toast(`${e.member.name} is marked as verified.`);
      break;
    case "media":
      onMedia(e.received);
      break;
    case "levels":
      for (const level of e.members) {
        const tile = call.tiles.get(level.conn);
        if (tile) {
          tile.root.classList.toggle("speaking", level.speaking);
          nameTile(tile, level.leaf, level.name);
        }
      }
      document.getElementById("self-tile")?.classList.toggle("speaking", !call.muted && e.own_dbfs > -40);
      break;
    case "devices":
      $("devices-note").textContent = `In use: microphone ${e.microphone ?? "none"}, speaker ${e.speaker ?? "none"}.`;
      break;
    case "audio_codec":
      toast(e.intercom
        ? `An intercom is in the call: your audio goes as ${e.codec.toUpperCase()}, which it can play.`
        : `No intercom in the call any more: your audio goes as ${e.codec.toUpperCase()} again.`);
      break;
    case "link":
      if (e.state === "closed" && !call.leaving) toast("The link to the server closed.", true);
      else if (e.state !== "closed") toast(e.state === "resumed" ? "Reconnected: same seat, same keys." : "Reconnected: joined the group again.");
      break;
    case "error":
      onError(e.message, e.code);
      break;
    case "left":
      if (call.events) {
        const unexpected = !call.leaving;
        backToJoin(unexpected && call.joined ? { kind: "ended", message: "The call ended: the link to the server was lost.", hint: "Join again; if it was hosted by someone else, ask them whether it still runs." } : null);
      }
      break;
    default:
      break;
  }
}

function onError(message: string, code?: string) {
  const refused: Record<string, UiError> = {
    room_full: { kind: "room_full", message: "The room is full.", hint: "Ask someone to leave, or use another room." },
    key_package_refused: { kind: "key_package_refused", message: "The call refused this device's key package.", hint: "The other members' app may be newer or older than this one; update it, or start with a new profile (--profile)." },
    overloaded: { kind: "overloaded", message: "The server is overloaded.", hint: "Try again in a minute, or host the call yourself (leave the server empty)." },
    shutting_down: { kind: "shutting_down", message: "The server is shutting down.", hint: "Try again when it is back, or host the call yourself." },
  };
  const known = code ? refused[code] : undefined;
  if (known && !call.joined) {
    call.leaving = true;
    if (call.pending) {
      call.refused = known; // handled when the join command returns
    } else {
      void invoke("leave").catch(() => undefined);
      backToJoin(known);
    }
    return;
  }
  toast(known ? `${known.message} ${known.hint}` : message, true);
}

function onMedia(received: RemoteStats[]) {
  for (const r of received) {
    const packets = r.audio.packets + r.video.packets;
    let tile = call.tiles.get(r.conn);
    if (!tile) {
      if (r.leaf === null || packets === 0) continue;
      tile = tileFor(r.conn);
    }
    nameTile(tile, r.leaf, r.name);
    tile.quietReports = packets === tile.packets ? tile.quietReports + 1 : 0;
    tile.packets = packets;
    const failed = r.audio.failed + r.video.failed;
    const failing = failed > tile.failed;
    tile.failed = failed;
    tile.badge.classList.toggle("failing", failing);
    tile.badge.textContent = failing ? "⚠ cannot decrypt" : "✓ encrypted";
    tile.root.dataset.failing = String(failing);
    // What the engine counted for this tile's video (read by the tests).
    tile.root.dataset.video = JSON.stringify(r.video);
    // Gone quiet for 3 s: left, or replaced by a new link.
    if (tile.quietReports >= 3) dropTile(tile);
  }
}

function dropTile(tile: Tile) {
  tile.root.remove();
  call.tiles.delete(tile.conn);
}

function warn(kind: "new-key" | "first-seen", text: string, member: MemberView) {
  const box = $("trust-warnings");
  const ok = el("button", { type: "button", textContent: kind === "new-key" ? "I understand" : "OK" });
  const row = el("div", { className: `warning ${kind}` }, el("span", { textContent: text }), ok);
  row.dataset.name = member.name;
  row.setAttribute("role", kind === "new-key" ? "alert" : "status");
  ok.addEventListener("click", () => row.remove());
  box.append(row);
}

// One banner for every identity seen for the first time, until dismissed.
function newToYou(member: MemberView) {
  let row = document.querySelector<HTMLElement>("#trust-warnings .warning.first-seen");
  if (!row) {
    const ok = el("button", { type: "button", textContent: "OK" });
    row = el("div", { className: "warning first-seen" }, el("span"), ok);
    row.setAttribute("role", "status");
    row.dataset.names = "";
    const dismissed = row;
    ok.addEventListener("click", () => dismissed.remove());
    $("trust-warnings").append(row);
  }
  const names = (row.dataset.names ? row.dataset.names.split("\n") : []).concat(member.name);
  row.dataset.names = names.join("\n");
  const text = row.querySelector("span");
  if (text) {
    text.textContent = `New to you: ${names.join(", ")}. You have never seen ${names.length === 1 ? "this identity" : "these identities"}: compare fingerprints in the encryption panel (E).`;
  }
}

// Your own tile: the self-view while the camera is on, your initial when
// it is off.
let selfView: I420Renderer | null = null;

function selfTile() {
  const canvas = el("canvas");
  canvas.hidden = true;
  selfView = null;
  try {
    selfView = new I420Renderer(canvas);
  } catch {
    // No WebGL2: the initial stays.
  }
  const root = el("div", { className: "tile self" },
    canvas,
    el("div", { className: "initial", textContent: ($<HTMLInputElement>("name").value.trim().slice(0, 1) || "?").toUpperCase() }),
    el("span", { className: "label", textContent: `${$<HTMLInputElement>("name").value.trim()} (you)` }),
    el("span", { className: "state", id: "self-state" }));
  root.id = "self-tile";
  $("grid").append(root);
}

function renderEncryption() {
  $("epoch").textContent = call.epoch >= 0 ? String(call.epoch) : "–";
  $("panel-epoch").textContent = $("epoch").textContent;
  const digits = groups(call.safety);
  $("safety-short").textContent = digits.slice(0, 2).join(" ") + (digits.length > 2 ? " …" : "");
  $("safety-number").replaceChildren(...digits.map((g) => el("span", { textContent: g })));
  const list = $("members");
  list.replaceChildren();
  for (const m of call.members) {
    const own = m.fingerprint === call.fingerprint;
    const trust = own ? "you" : m.verified ? "verified" : (call.trust.get(m.fingerprint) ?? "known");
    const label: Record<string, string> = { you: "you", verified: "✔ verified", known: "seen before, not verified", first_seen: "new to you", new_key: "⚠ NEW KEY" };
    const li = el("li", { className: trust.replace("_", "-") },
      el("strong", { textContent: m.name }),
      el("span", { className: `trust ${trust.replace("_", "-")}`, textContent: label[trust] ?? trust }),
      el("div", { className: "quiet", textContent: `${m.device} · leaf ${m.leaf}` }),
      el("div", { className: "fingerprint", textContent: m.fingerprint }));
    li.dataset.name = m.name;
    li.dataset.leaf = String(m.leaf);
    if (!own && !m.verified) {
      const b = el("button", { type: "button", textContent: "Fingerprint matches: mark verified" });
      b.addEventListener("click", () => void invoke("verify", { leaf: m.leaf }).catch((e) => toast(asUiError(e).message, true)));
      li.append(b);
    }
    list.append(li);
  }
}

function updateButtons() {
  $("mute").textContent = call.muted ? "Unmute " : "Mute ";
  $("mute").append(el("kbd", { textContent: "M" }));
  $("mute").classList.toggle("on", call.muted);
  $("camera").textContent = call.cameraOn ? "Camera off " : "Camera on ";
  $("camera").append(el("kbd", { textContent: "V" }));
  $("camera").classList.toggle("on", !call.cameraOn);
  if (!call.cameraOn && selfView) {
    selfView.canvas.hidden = true;
    document.querySelector("#self-tile .initial")?.removeAttribute("hidden");
  }
  const state = document.getElementById("self-state");
  if (state) state.textContent = [call.muted ? "muted" : "", call.cameraOn ? "" : "camera off"].filter(Boolean).join(" · ");
}

async function toggleMute() {
  const muted = !call.muted;
  try {
    await invoke("set_muted", { muted });
    call.muted = muted;
    updateButtons();
  } catch (e) { toast(asUiError(e).message, true); }
}

async function toggleCamera() {
  const on = !call.cameraOn;
  try {
    await invoke("set_camera", { on });
    call.cameraOn = on;
    updateButtons();
  } catch (e) { toast(asUiError(e).message, true); }
}

function togglePanel(id: "panel" | "devices-panel") {
  const other = id === "panel" ? "devices-panel" : "panel";
  $(other).hidden = true;
  $(id).hidden = !$(id).hidden;
  if (id === "devices-panel" && !$(id).hidden) void loadDevices();
}

async function loadDevices() {
  try {
    const d = await invoke<Devices>("devices");
    const fill = (id: string, kind: string, items: [string, string][], picked: string | null) => {
      const select = $<HTMLSelectElement>(id);
      select.replaceChildren(el("option", { value: "", textContent: "Default" }), ...items.map(([value, text]) => el("option", { value, textContent: text })));
      select.value = picked ?? "";
      select.onchange = () => void invoke("pick_device", { kind, name: select.value || null }).catch((e) => toast(asUiError(e).message, true));
    };
    fill("pick-microphone", "microphone", d.microphones.map((n) => [n, n]), d.microphone);
    fill("pick-speaker", "speaker", d.speakers.map((n) => [n, n]), d.speaker);
    fill("pick-camera", "camera", d.cameras, d.camera);
    if (d.audio_error) $("devices-note").textContent = `No audio devices: ${d.audio_error}`;
    else if (d.cameras.length === 0) $("devices-note").textContent = "No camera found: the others see a test pattern.";
  } catch (e) { toast(asUiError(e).message, true); }
}

async function leave() {
  if (!call.active) return;
  call.leaving = true;
  try {
    await invoke("leave");
  } catch (e) {
    toast(asUiError(e).message, true);
  }
  backToJoin(null);
}

function onKey(e: KeyboardEvent) {
  if (!call.joined || $("call-screen").hidden) return;
  const target = e.target as HTMLElement | null;
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT")) return;
  if (e.ctrlKey && e.key.toLowerCase() === "l") { e.preventDefault(); void leave(); return; }
  if (e.ctrlKey || e.altKey || e.metaKey) return;
  switch (e.key.toLowerCase()) {
    case "m": void toggleMute(); break;
    case "v": void toggleCamera(); break;
    case "e": togglePanel("panel"); break;
    case "d": togglePanel("devices-panel"); break;
    case "escape": $("panel").hidden = true; $("devices-panel").hidden = true; break;
    default: return;
  }
  e.preventDefault();
}

async function start() {
  $("join-form").addEventListener("submit", (e) => { e.preventDefault(); void join(); });
  $("mute").addEventListener("click", () => void toggleMute());
  $("camera").addEventListener("click", () => void toggleCamera());
  $("devices").addEventListener("click", () => togglePanel("devices-panel"));
  $("encryption").addEventListener("click", () => togglePanel("panel"));
  $("leave").addEventListener("click", () => void leave());
  document.addEventListener("keydown", onKey);
  const s = await invoke<Startup>("startup");
  $<HTMLInputElement>("name").value = s.name;
  $<HTMLInputElement>("room").value = s.room;
  $<HTMLInputElement>("server").value = s.server;
  fillRecent(s.recent);
  $("profile-line").textContent = `Profile “${s.profile}” in ${s.dir}${s.tone ? ` · microphone: a ${s.tone} Hz test tone` : ""}`;
  $("startup-warnings").replaceChildren(...s.warnings.map((w) => el("li", { textContent: w })));
  document.body.dataset.ready = "true";
  if (s.join) void join();
  else $<HTMLInputElement>(s.name ? "room" : "name").focus();
}

void start();
