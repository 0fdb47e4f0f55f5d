/**
 * The web app served at `/` of the signalling port: join a room by name,
 * a grid of tiles with a speaking indicator, controls, a shareable link;
 * and direct calls (docs/calls.md): go online on the hub with this
 * browser's identity (kept in IndexedDB), see the contacts the relay's
 * presence policy permits, call a fingerprint, ring, accept or reject, and
 * meet in `call-<id>` with the call's end-to-end key.
 *
 * URL: `?room=NAME&name=ALIAS&join=1` fills the form (and joins at once
 * with `join=1`); `#key=…` carries the room key. Browsers never send the
 * fragment to a server, so the relay never sees the key. `?online=1` goes
 * online on the hub at once (with `name` as the alias).
 */
import {
  type BrowserCallSetup,
  BrowserIdentity,
  CallEnded,
  connect,
  type HangupBody,
  HubConnection,
  type IncomingBrowserCall,
  newRoomKey,
  type PresenceUser,
  type WzpCall,
} from './index.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

interface Tile {
  el: HTMLDivElement;
  label: HTMLSpanElement;
  dot: HTMLSpanElement;
  level: HTMLElement;
}

const tiles = new Map<number | 'self', Tile>();
let call: WzpCall | null = null;
let renderTimer: ReturnType<typeof setInterval> | null = null;

/** A direct call in progress (ringing or set up). */
interface DirectCall {
  callId: string;
  peerFingerprint: string;
  peerAlias: string | null;
  direction: 'incoming' | 'outgoing';
  state: 'ringing' | 'connecting' | 'in-call';
}

let identity: BrowserIdentity | null = null;
let hub: HubConnection | null = null;
let direct: DirectCall | null = null;
/** The incoming call the ringing dialog shows. */
let ringingIn: IncomingBrowserCall | null = null;

function params(): { room: string; name: string; join: boolean; key: string | null } {
  const q = new URLSearchParams(location.search);
  const h = new URLSearchParams(location.hash.slice(1));
  return {
    room: q.get('room') ?? '',
    name: q.get('name') ?? localStorage.getItem('wzp-name') ?? '',
    join: q.get('join') === '1',
    key: h.get('key'),
  };
}

/** The link others open to join: room in the query, key in the fragment. */
function shareLink(room: string, key: string | null): string {
  const u = new URL(location.pathname, location.origin);
  u.searchParams.set('room', room);
  for (const extra of ['cipher', 'video', 'simulcast']) {
    const v = new URLSearchParams(location.search).get(extra);
    if (v !== null) {
      u.searchParams.set(extra, v);
    }
  }
  return `${u.toString()}${key === null ? '' : `#key=${encodeURIComponent(key)}`}`;
}

function makeTile(id: number | 'self', name: string, media: HTMLElement): Tile {
  const el = document.createElement('div');
  el.className = 'tile';
  el.dataset.tile = String(id);
  el.append(media);
  const label = document.createElement('span');
  label.className = 'label';
  const dot = document.createElement('span');
  dot.className = 'dot';
  const text = document.createElement('span');
  text.textContent = name;
  label.append(dot, text);
  const bar = document.createElement('span');
  bar.className = 'level';
  const level = document.createElement('i');
  bar.append(level);
  el.append(label, bar);
  $('grid').append(el);
  const t = { el, label: text, dot, level };
  tiles.set(id, t);
  return t;
}

function removeTile(id: number | 'self'): void {
  tiles.get(id)?.el.remove();
  tiles.delete(id);
}

function render(): void {
  if (call === null) {
    return;
  }
  const stats = call.getStats();
  const self = tiles.get('self');
  if (self !== undefined) {
    const lvl = call.microphoneLevel;
    self.level.style.height = `${Math.min(100, lvl * 400)}%`;
    self.el.classList.toggle('speaking', lvl > 0.01);
    self.dot.className = `dot ${stats.state === 'connected' ? 'good' : 'poor'}`;
  }
  for (const p of stats.peers) {
    const t = tiles.get(p.tag);
    if (t === undefined) {
      continue;
    }
    t.label.textContent = `${p.alias ?? 'anonymous'}${p.e2ee === 'encrypted' ? ' · E2EE' : p.e2ee === 'failing' ? ' · wrong room key' : ''}`;
    t.level.style.height = `${Math.min(100, p.audioLevel * 400)}%`;
    t.el.classList.toggle('speaking', p.speaking);
    t.dot.className = `dot ${p.quality === 'unknown' ? '' : p.quality}`;
    t.dot.title = `loss ${p.lossPct.toFixed(1)} %, jitter ${p.jitterMs.toFixed(0)} ms`;
  }
  const conn = $('conn');
  conn.textContent =
    stats.state === 'connected'
      ? `connected${stats.rttMs === null ? '' : ` · ${stats.rttMs.toFixed(0)} ms`}`
      : stats.state;
  conn.className = `badge ${stats.state === 'connected' ? 'ok' : 'warn'}`;
  $('audio-blocked').hidden = !call.audioBlocked;
}

async function fillDevices(c: WzpCall): Promise<void> {
  const devices = await c.devices();
  const fill = (id: string, kind: MediaDeviceKind): void => {
    const sel = $<HTMLSelectElement>(id);
    sel.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind)
        .map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId)),
    );
  };
  fill('mic', 'audioinput');
  fill('cam', 'videoinput');
  fill('speaker', 'audiooutput');
}

interface JoinOptions {
  /** The relay to join on (default: this page's origin). */
  url?: string;
  /** A direct call's room: joined with the hub identity, no shareable link. */
  direct?: DirectCall;
}

async function join(
  room: string,
  name: string,
  key: string | Uint8Array | null,
  opts: JoinOptions = {},
): Promise<boolean> {
  $('join-error').textContent = '';
  $<HTMLButtonElement>('join').disabled = true;
  localStorage.setItem('wzp-name', name);
  try {
    // Optional: ?cipher=js forces the pure-JS cipher; ?video=WxH asks for a camera size; ?video=0 no camera;
    // ?simulcast=0 sends one video layer.
    const q = new URLSearchParams(location.search);
    const cipher = q.get('cipher');
    const size = /^(\d+)x(\d+)$/.exec(q.get('video') ?? '');
    call = await connect({
      url: opts.url ?? location.origin,
      room,
      alias: name,
      ...(key === null ? {} : { roomKey: key }),
      ...(opts.direct !== undefined && identity !== null ? { identity } : {}),
      ...(cipher === 'js' || cipher === 'webcrypto' ? { cipher } : {}),
      ...(q.get('simulcast') === '0' ? { simulcast: false } : {}),
      ...(q.get('video') === '0'
        ? { video: false }
        : size !== null
          ? { video: { width: Number(size[1]), height: Number(size[2]), frameRate: 15 } }
          : {}),
    });
  } catch (err) {
    $(opts.direct === undefined ? 'join-error' : 'call-error').textContent =
      `Cannot join: ${(err as Error).message}`;
    $<HTMLButtonElement>('join').disabled = false;
    return false;
  }
  const c = call;
  if (opts.direct === undefined && !(key instanceof Uint8Array)) {
    history.replaceState(null, '', shareLink(room, key).replace(location.origin, ''));
  }
  $('join-view').hidden = true;
  $('call-view').hidden = false;
  $('copy-link').hidden = opts.direct !== undefined;
  const title =
    opts.direct === undefined
      ? room
      : `Call with ${opts.direct.peerAlias ?? opts.direct.peerFingerprint.slice(0, 9)}`;
  $('room-name').textContent = title;
  $('room-name').title = room;
  document.title = `${title} · wzp call`;
  const e2ee = $('e2ee');
  e2ee.textContent = c.encrypted ? 'end-to-end encrypted' : 'not end-to-end encrypted';
  e2ee.className = `badge ${c.encrypted ? 'ok' : 'warn'}`;
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.srcObject = c.localStream;
  makeTile('self', `${name} (you)`, video);
  c.addEventListener('localstream', () => {
    video.srcObject = c.localStream;
  });
  c.addEventListener('peerjoined', (ev) => {
    const p = (ev as CustomEvent<{ tag: number; alias: string | null }>).detail;
    const canvas = c.canvasOf(p.tag);
    if (canvas !== null) {
      makeTile(p.tag, p.alias ?? 'anonymous', canvas);
    }
  });
  c.addEventListener('peerleft', (ev) => removeTile((ev as CustomEvent<number>).detail));
  c.addEventListener('roomupdate', () => {
    // After a reconnect peers come back with new tiles.
    for (const id of [...tiles.keys()]) {
      if (id !== 'self' && c.canvasOf(id) === null) {
        removeTile(id);
      }
    }
  });
  for (const p of c.participants) {
    const canvas = c.canvasOf(p.tag);
    if (canvas !== null && !tiles.has(p.tag)) {
      makeTile(p.tag, p.alias ?? 'anonymous', canvas);
    }
  }
  $('mute').onclick = () => {
    c.setMuted(!c.muted);
    $('mute').textContent = c.muted ? 'Unmute' : 'Mute';
    $('mute').classList.toggle('off', c.muted);
  };
  $('camera').onclick = () => {
    c.setCameraOn(!c.cameraOn);
    $('camera').textContent = c.cameraOn ? 'Camera off' : 'Camera on';
    $('camera').classList.toggle('off', !c.cameraOn);
  };
  $('copy-link').onclick = async () => {
    await navigator.clipboard?.writeText(location.href).catch(() => {});
    $('copy-link').textContent = 'Link copied';
    setTimeout(() => {
      $('copy-link').textContent = 'Copy link';
    }, 1500);
  };
  $('enable-audio').onclick = () => void c.resumeAudio();
  $<HTMLSelectElement>('mic').onchange = (e) =>
    void c.setMicrophone((e.target as HTMLSelectElement).value);
  $<HTMLSelectElement>('cam').onchange = (e) =>
    void c.setCamera((e.target as HTMLSelectElement).value);
  $<HTMLSelectElement>('speaker').onchange = (e) =>
    void c.setSpeaker((e.target as HTMLSelectElement).value);
  $('leave').onclick = async () => {
    if (opts.direct !== undefined) {
      hub?.hangup(opts.direct.callId);
      await leaveCall();
      return;
    }
    await c.close();
    location.href = location.pathname;
  };
  await fillDevices(c).catch(() => {});
  renderTimer = setInterval(render, 200);
  return true;
}

/** Leaves the room of a direct call and goes back to the start view (still online). */
async function leaveCall(note = ''): Promise<void> {
  const c = call;
  call = null;
  direct = null;
  if (renderTimer !== null) {
    clearInterval(renderTimer);
    renderTimer = null;
  }
  await c?.close();
  for (const id of [...tiles.keys()]) {
    removeTile(id);
  }
  const w = window as unknown as Record<string, unknown>;
  delete w.wzpStats;
  delete w.wzpCall;
  $('call-view').hidden = true;
  $('join-view').hidden = false;
  $<HTMLButtonElement>('join').disabled = false;
  document.title = 'wzp call';
  $('call-error').textContent = note;
  renderPresence();
}

// ── direct calls ─────────────────────────────────────────────────────────

function reasonText(r: HangupBody['reason']): string {
  if (typeof r !== 'string') {
    return 'PolicyViolation' in r ? r.PolicyViolation.reason : 'protocol version mismatch';
  }
  return (
    {
      Normal: 'the call ended',
      Busy: 'busy',
      Declined: 'declined',
      Timeout: 'no answer',
      Error: 'the call failed',
      Shutdown: 'the relay is shutting down',
    }[r] ?? r
  );
}

function contactsFromBox(): string[] {
  return $<HTMLTextAreaElement>('contacts')
    .value.split(/[\s,]+/)
    .map((t) => t.trim().toLowerCase())
    .filter((t) => /^([0-9a-f]{4}:){7}[0-9a-f]{4}$/.test(t));
}

function setHubState(text: string, ok: boolean): void {
  const el = $('hub-state');
  el.textContent = text;
  el.className = `badge ${ok ? 'ok' : 'warn'}`;
  $<HTMLButtonElement>('call-btn').disabled = !ok;
  $('go-online').textContent = ok ? 'Update contacts' : 'Go online';
}

function renderPresence(): void {
  const list = $('presence');
  const users: PresenceUser[] = hub?.presence ?? [];
  list.replaceChildren(
    ...users.map((u) => {
      const li = document.createElement('li');
      li.dataset.fingerprint = u.fingerprint;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = u.alias ?? 'anonymous';
      const fp = document.createElement('span');
      fp.className = 'fp';
      fp.textContent = u.fingerprint;
      who.append(fp);
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'call-contact';
      btn.textContent = 'Call';
      btn.disabled = direct !== null;
      btn.onclick = () => void placeCall(u.fingerprint, u.alias);
      li.append(who, btn);
      return li;
    }),
  );
}

async function goOnline(): Promise<void> {
  if (identity === null) {
    return;
  }
  const name = $<HTMLInputElement>('name').value.trim();
  const contacts = contactsFromBox();
  localStorage.setItem('wzp-contacts', contacts.join('\n'));
  if (name !== '') {
    localStorage.setItem('wzp-name', name);
  }
  $('call-error').textContent = '';
  // New contacts need a new registration (they are part of RegisterPresence).
  const old = hub;
  hub = null;
  old?.close();
  setHubState('connecting…', false);
  let h: HubConnection;
  try {
    h = await HubConnection.connect({
      url: location.origin,
      identity,
      alias: name === '' ? null : name,
      contacts,
    });
  } catch (err) {
    setHubState('offline', false);
    $('call-error').textContent = `Cannot go online: ${(err as Error).message}`;
    return;
  }
  hub = h;
  (window as unknown as { wzpHub: HubConnection }).wzpHub = h;
  setHubState('online', true);
  renderPresence();
  h.addEventListener('presence', () => renderPresence());
  h.addEventListener('incoming', (ev) =>
    onIncoming((ev as CustomEvent<IncomingBrowserCall>).detail),
  );
  h.addEventListener('ringing', (ev) => {
    if (direct?.callId === (ev as CustomEvent<string>).detail) {
      $('ring-status').textContent = 'Ringing…';
    }
  });
  h.addEventListener('hangup', (ev) => void onHubHangup((ev as CustomEvent<HangupBody>).detail));
  h.addEventListener('close', () => {
    if (hub === h) {
      hub = null;
      setHubState('offline', false);
      // The relay ends the calls of a party whose hub connection closed: so does this page.
      if (direct !== null) {
        const d = direct;
        if (d.state === 'ringing') {
          direct = null;
          hideRing();
        } else {
          void leaveCall('Call ended: the connection to the hub was lost');
        }
      }
      renderPresence();
    }
  });
}

function showRing(kind: 'incoming' | 'outgoing', who: string, fp: string, status: string): void {
  $('ring').hidden = false;
  $('ring').dataset.kind = kind;
  $('ring-title').textContent = kind === 'incoming' ? `${who} is calling` : `Calling ${who}`;
  $('ring-fp').textContent = fp;
  $('ring-status').textContent = status;
  $('ring-accept').hidden = kind !== 'incoming';
  $('ring-reject').hidden = kind !== 'incoming';
  $('ring-cancel').hidden = kind !== 'outgoing';
}

function hideRing(): void {
  $('ring').hidden = true;
  ringingIn = null;
}

async function enterCall(setup: BrowserCallSetup): Promise<void> {
  const d = direct;
  if (d === null || d.callId !== setup.callId) {
    return;
  }
  d.state = 'connecting';
  $('ring-status').textContent = 'Connecting…';
  const name = $<HTMLInputElement>('name').value.trim() || 'me';
  const ok = await join(setup.room, name, setup.roomKey, { url: setup.relayUrl, direct: d });
  hideRing();
  if (!ok) {
    hub?.hangup(d.callId, 'Error');
    direct = null;
    renderPresence();
    return;
  }
  if (direct === d) {
    d.state = 'in-call';
  }
}

async function placeCall(target: string, alias: string | null): Promise<void> {
  const h = hub;
  if (h === null || direct !== null) {
    return;
  }
  $('call-error').textContent = '';
  const who = alias ?? target.slice(0, 9);
  showRing('outgoing', who, target, 'Calling…');
  let out: Awaited<ReturnType<HubConnection['call']>>;
  try {
    out = await h.call(target);
  } catch (err) {
    hideRing();
    $('call-error').textContent = `Cannot call: ${(err as Error).message}`;
    return;
  }
  direct = {
    callId: out.callId,
    peerFingerprint: target,
    peerAlias: alias,
    direction: 'outgoing',
    state: 'ringing',
  };
  renderPresence();
  $('ring-cancel').onclick = () => h.hangup(out.callId);
  try {
    await enterCall(await out.setup);
  } catch (err) {
    if (direct?.callId === out.callId) {
      direct = null;
    }
    hideRing();
    renderPresence();
    $('call-error').textContent =
      err instanceof CallEnded
        ? `Call ${err.code === 'hung up here' ? 'cancelled' : `not connected: ${reasonText(err.reason)}`}`
        : `Call failed: ${(err as Error).message}`;
  }
}

function onIncoming(inc: IncomingBrowserCall): void {
  if (direct !== null || call !== null) {
    // One call at a time.
    inc.reject();
    return;
  }
  direct = {
    callId: inc.callId,
    peerFingerprint: inc.callerFingerprint,
    peerAlias: inc.callerAlias,
    direction: 'incoming',
    state: 'ringing',
  };
  ringingIn = inc;
  renderPresence();
  showRing('incoming', inc.callerAlias ?? 'Someone', inc.callerFingerprint, '');
  $('ring-accept').onclick = async () => {
    if (ringingIn !== inc) {
      return;
    }
    $('ring-status').textContent = 'Answering…';
    try {
      await enterCall(await inc.accept());
    } catch (err) {
      hideRing();
      direct = null;
      renderPresence();
      $('call-error').textContent =
        err instanceof CallEnded ? `Call ended: ${reasonText(err.reason)}` : String(err);
    }
  };
  $('ring-reject').onclick = () => {
    inc.reject();
    hideRing();
    direct = null;
    renderPresence();
  };
}

async function onHubHangup(body: HangupBody): Promise<void> {
  const d = direct;
  if (d === null || body.call_id !== d.callId) {
    return;
  }
  if (d.state === 'in-call' || d.state === 'connecting') {
    await leaveCall(`Call ended: ${reasonText(body.reason)}`);
    return;
  }
  // Ringing: the caller cancelled or the call timed out (an outgoing call's own promise reports).
  if (d.direction === 'incoming') {
    direct = null;
    hideRing();
    renderPresence();
    $('call-error').textContent = `Missed call from ${d.peerAlias ?? d.peerFingerprint}`;
  }
}

async function initCalls(online: boolean): Promise<void> {
  try {
    identity = await BrowserIdentity.persistent();
  } catch (err) {
    $('my-fp').textContent = `unavailable (${(err as Error).message})`;
    $<HTMLButtonElement>('go-online').disabled = true;
    return;
  }
  $('my-fp').textContent = identity.fingerprint;
  $('copy-fp').onclick = () =>
    void navigator.clipboard?.writeText(identity?.fingerprint ?? '').catch(() => {});
  $<HTMLTextAreaElement>('contacts').value = localStorage.getItem('wzp-contacts') ?? '';
  $('go-online').onclick = () => void goOnline();
  $<HTMLFormElement>('call-form').onsubmit = (e) => {
    e.preventDefault();
    const fp = $<HTMLInputElement>('call-fp').value.trim().toLowerCase();
    const known = hub?.presence.find((u) => u.fingerprint === fp);
    void placeCall(fp, known?.alias ?? null);
  };
  document.body.dataset.identity = identity.fingerprint;
  if (online) {
    await goOnline();
  }
}

function main(): void {
  const p = params();
  $<HTMLInputElement>('room').value = p.room;
  $<HTMLInputElement>('name').value = p.name;
  if (p.room !== '' && p.key === null) {
    // A link without a key joins without end-to-end encryption.
    $<HTMLInputElement>('encrypt').checked = false;
  }
  const go = (): void => {
    const room = $<HTMLInputElement>('room').value.trim();
    const name = $<HTMLInputElement>('name').value.trim();
    const key = $<HTMLInputElement>('encrypt').checked ? (p.key ?? newRoomKey()) : null;
    void join(room, name, key);
  };
  $<HTMLFormElement>('join-form').onsubmit = (e) => {
    e.preventDefault();
    go();
  };
  if (p.join && p.room !== '' && p.name !== '') {
    go();
  }
  void initCalls(new URLSearchParams(location.search).get('online') === '1');
}

main();
