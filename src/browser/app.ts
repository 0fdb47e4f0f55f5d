/**
 * The web app served at `/` of the signalling port: join a room by name,
 * a grid of tiles with a speaking indicator, controls, a shareable link.
 *
 * URL: `?room=NAME&name=ALIAS&join=1` fills the form (and joins at once
 * with `join=1`); `#key=…` carries the room key. Browsers never send the
 * fragment to a server, so the relay never sees the key.
 */
import { connect, newRoomKey, type WzpCall } from './index.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

interface Tile {
  el: HTMLDivElement;
  label: HTMLSpanElement;
  dot: HTMLSpanElement;
  level: HTMLElement;
}

const tiles = new Map<number | 'self', Tile>();
let call: WzpCall | null = null;

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
  for (const extra of ['cipher', 'video']) {
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

async function join(room: string, name: string, key: string | null): Promise<void> {
  $('join-error').textContent = '';
  $<HTMLButtonElement>('join').disabled = true;
  localStorage.setItem('wzp-name', name);
  try {
    // Optional: ?cipher=js forces the pure-JS cipher; ?video=WxH asks for a camera size; ?video=0 no camera.
    const q = new URLSearchParams(location.search);
    const cipher = q.get('cipher');
    const size = /^(\d+)x(\d+)$/.exec(q.get('video') ?? '');
    call = await connect({
      url: location.origin,
      room,
      alias: name,
      ...(key === null ? {} : { roomKey: key }),
      ...(cipher === 'js' || cipher === 'webcrypto' ? { cipher } : {}),
      ...(q.get('video') === '0'
        ? { video: false }
        : size !== null
          ? { video: { width: Number(size[1]), height: Number(size[2]), frameRate: 15 } }
          : {}),
    });
  } catch (err) {
    $('join-error').textContent = `Cannot join: ${(err as Error).message}`;
    $<HTMLButtonElement>('join').disabled = false;
    return;
  }
  const c = call;
  history.replaceState(null, '', shareLink(room, key).replace(location.origin, ''));
  $('join-view').hidden = true;
  $('call-view').hidden = false;
  $('room-name').textContent = room;
  document.title = `${room} · wzp call`;
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
    await c.close();
    location.href = location.pathname;
  };
  await fillDevices(c).catch(() => {});
  setInterval(render, 200);
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
}

main();
