/**
 * The operator dashboard (`/dashboard` on the HTTP port): rooms,
 * participants and their tiers, media workers, federation links, and live
 * packets/s and loss charts, all read from the relay's JSON endpoints and
 * `/metrics` once a second.
 */

interface StreamJson {
  stream_id: number;
  media_type?: number;
  stats: { lossPct: number; jitterMs: number; pps: number };
}
interface ParticipantJson {
  tag: number;
  alias: string | null;
  fingerprint: string;
  relay_label: string | null;
  tier: string | null;
  transport?: string | null;
  packets_in: number;
  packets_out: number;
  idle_ms: number;
  streams: StreamJson[];
}
interface RoomsJson {
  rooms: { name: string; tier: string; participants: ParticipantJson[] }[];
}

const HISTORY = 120;
const series = {
  in: [] as number[],
  out: [] as number[],
  loss: [] as number[],
};
let last: { t: number; inn: number; out: number } | null = null;

const $ = (id: string): HTMLElement => document.getElementById(id) as HTMLElement;

function cell(text: string | number, cls = ''): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (cls !== '') {
    td.className = cls;
  }
  return td;
}

function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
    }
  }
  return sum;
}

function push(arr: number[], v: number): void {
  arr.push(v);
  if (arr.length > HISTORY) {
    arr.shift();
  }
}

function chart(id: string, lines: { data: number[]; color: string }[], legend: string): void {
  const c = $(id) as HTMLCanvasElement;
  const g = c.getContext('2d');
  if (g === null) {
    return;
  }
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...lines.flatMap((l) => l.data)) * 1.1;
  g.strokeStyle = '#333';
  g.beginPath();
  for (let i = 1; i < 4; i++) {
    g.moveTo(0, (c.height * i) / 4);
    g.lineTo(c.width, (c.height * i) / 4);
  }
  g.stroke();
  for (const l of lines) {
    g.strokeStyle = l.color;
    g.lineWidth = 2;
    g.beginPath();
    l.data.forEach((v, i) => {
      const x = (c.width * i) / (HISTORY - 1);
      const y = c.height - (v / max) * c.height;
      i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
    });
    g.stroke();
  }
  g.fillStyle = '#888';
  g.fillText(max.toFixed(max < 10 ? 1 : 0), 4, 12);
  $(`${id}-legend`).textContent = legend;
}

async function getJson<T>(path: string): Promise<T | null> {
  try {
    const r = await fetch(path, { cache: 'no-store' });
    return r.ok ? ((await r.json()) as T) : null;
  } catch {
    return null;
  }
}

function renderRooms(rooms: RoomsJson): number {
  const body = ($('rooms') as HTMLTableElement).tBodies[0] as HTMLTableSectionElement;
  const rows: HTMLTableRowElement[] = [];
  let lossSum = 0;
  let lossN = 0;
  for (const room of rooms.rooms) {
    room.participants.forEach((p, i) => {
      const tr = document.createElement('tr');
      tr.dataset.room = room.name;
      const loss = p.streams.reduce((m, s) => Math.max(m, s.stats.lossPct), 0);
      const jitter = p.streams.reduce((m, s) => Math.max(m, s.stats.jitterMs), 0);
      if (p.streams.length > 0) {
        lossSum += loss;
        lossN++;
      }
      tr.append(
        cell(i === 0 ? room.name : ''),
        cell(i === 0 ? room.tier : ''),
        cell(`${p.alias ?? '—'}${p.relay_label === null ? '' : ` @${p.relay_label}`}`),
        cell(p.tag),
        cell(p.tier ?? '—'),
        cell(p.transport ?? (p.relay_label === null ? '—' : 'federation')),
        cell(p.packets_in),
        cell(p.packets_out),
        cell(loss.toFixed(1), loss > 5 ? 'bad' : ''),
        cell(jitter.toFixed(1)),
        cell(p.idle_ms),
      );
      rows.push(tr);
    });
  }
  body.replaceChildren(...rows);
  const n = rooms.rooms.reduce((k, r) => k + r.participants.length, 0);
  $('room-count').textContent = `${rooms.rooms.length} rooms, ${n} participants`;
  return lossN === 0 ? 0 : lossSum / lossN;
}

function renderKeyValues(
  id: string,
  items: { name: string; status?: string; rest: unknown }[],
): void {
  const body = ($(id) as HTMLTableElement).tBodies[0] as HTMLTableSectionElement;
  if (items.length === 0) {
    const tr = document.createElement('tr');
    tr.append(cell('none', 'muted'));
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(
    ...items.map((it) => {
      const tr = document.createElement('tr');
      tr.append(cell(it.name));
      if (it.status !== undefined) {
        tr.append(cell(it.status, it.status === 'up' ? 'ok' : 'bad'));
      }
      tr.append(cell(JSON.stringify(it.rest)));
      return tr;
    }),
  );
}

async function tick(): Promise<void> {
  const [rooms, peers, workers, metricsText] = await Promise.all([
    getJson<RoomsJson>('/v2/rooms'),
    getJson<{ peers?: { label: string; status?: string; up?: boolean }[] }>('/v2/peers'),
    getJson<{ workers?: ({ id?: number } & Record<string, unknown>)[] }>('/v2/workers'),
    fetch('/metrics', { cache: 'no-store' })
      .then((r) => (r.ok ? r.text() : ''))
      .catch(() => ''),
  ]);
  $('status').textContent =
    rooms === null ? 'relay unreachable' : `updated ${new Date().toLocaleTimeString()}`;
  const loss = rooms === null ? 0 : renderRooms(rooms);
  const now = performance.now();
  const inn = metric(metricsText, 'wzp_relay_packets_received_total');
  const out = metric(metricsText, 'wzp_relay_packets_forwarded_total');
  if (last !== null && now > last.t) {
    const dt = (now - last.t) / 1000;
    push(series.in, Math.max(0, (inn - last.inn) / dt));
    push(series.out, Math.max(0, (out - last.out) / dt));
    push(series.loss, loss);
  }
  last = { t: now, inn, out };
  const lastOf = (a: number[]) => (a.length === 0 ? 0 : (a[a.length - 1] as number));
  chart(
    'pps',
    [
      { data: series.in, color: '#4fc3f7' },
      { data: series.out, color: '#aed581' },
    ],
    `in ${lastOf(series.in).toFixed(0)}/s (blue) · out ${lastOf(series.out).toFixed(0)}/s (green)`,
  );
  chart(
    'loss',
    [{ data: series.loss, color: '#ef5350' }],
    `mean receive loss of senders ${lastOf(series.loss).toFixed(1)} %`,
  );
  renderKeyValues(
    'workers',
    (workers?.workers ?? []).map((w, i) => ({ name: `worker ${w.id ?? i}`, rest: w })),
  );
  renderKeyValues(
    'peers',
    (peers?.peers ?? []).map((p) => {
      const { label, ...rest } = p;
      const status = p.status ?? (p.up === true ? 'up' : p.up === false ? 'down' : undefined);
      return { name: label, ...(status === undefined ? {} : { status }), rest };
    }),
  );
  document.body.dataset.ready = '1';
}

void tick();
setInterval(() => void tick(), 1000);
