// Control-plane load of bench/forwarding: while the media step runs, scrape
// the relay's /metrics every SCRAPE_MS and join JOINS_PER_SEC new sessions per
// second into other rooms (WebSocket signalling, CallOffer/CallAnswer), each
// leaving with a Hangup about one second later, so that about as many leave as
// join every second.
//
//   node control-load.mjs SIGNAL_URL HTTP_URL [JOINS_PER_SEC=20] [SCRAPE_MS=1000]
//
// Runs in its own process (the bench pins it to the load generator's core, so
// that it never takes CPU from the relay under test). Prints "ready" once the
// first scrape and the first second of churn are done, then runs until its
// stdin closes; prints one JSON line of what it did and exits.
import { WzpClient } from '../../dist/client/index.js';

const [signalUrl, httpUrl] = process.argv.slice(2, 4);
const JOINS_PER_SEC = Number(process.argv[4] ?? 20);
const SCRAPE_MS = Number(process.argv[5] ?? 1000);
const LIFETIME_MS = 1000;
const ROOMS = 10;
const MAX_IN_FLIGHT = 4 * JOINS_PER_SEC;

const stats = {
  scrapes: 0,
  scrapeErrors: 0,
  scrapeMs: [],
  scrapeBytes: 0,
  joins: 0,
  joinErrors: 0,
  joinMs: [],
  leaves: 0,
  skippedJoins: 0,
};
let stopping = false;
let inFlight = 0;
let k = 0;
/** Joined sessions with the time they leave. */
const live = [];

async function scrape() {
  const t0 = performance.now();
  try {
    const res = await fetch(`${httpUrl}/metrics`);
    const text = await res.text();
    if (!res.ok) {
      throw new Error(`HTTP ${res.status}`);
    }
    stats.scrapes++;
    stats.scrapeBytes = text.length;
    stats.scrapeMs.push(performance.now() - t0);
  } catch {
    stats.scrapeErrors++;
  }
}

async function join() {
  if (inFlight >= MAX_IN_FLIGHT) {
    // The relay is not keeping up: count it instead of piling up sockets.
    stats.skippedJoins++;
    return;
  }
  inFlight++;
  const room = `churn-${k++ % ROOMS}`;
  const client = new WzpClient({ signalUrl, room });
  const t0 = performance.now();
  try {
    await client.handshake();
    stats.joins++;
    stats.joinMs.push(performance.now() - t0);
    live.push({ client, leaveAt: performance.now() + LIFETIME_MS });
  } catch {
    stats.joinErrors++;
    await client.close(false).catch(() => {});
  } finally {
    inFlight--;
  }
}

function leaveDue(now) {
  while (live.length > 0 && (stopping || live[0].leaveAt <= now)) {
    const { client } = live.shift();
    stats.leaves++;
    client.close(true).catch(() => {});
  }
}

const scrapeTimer = setInterval(scrape, SCRAPE_MS);
// JOINS_PER_SEC = 0: scrapes only (a diagnostic of bench/forwarding).
const joinTimer =
  JOINS_PER_SEC > 0
    ? setInterval(
        () => {
          leaveDue(performance.now());
          join();
        },
        Math.round(1000 / JOINS_PER_SEC),
      )
    : null;
await scrape();
await new Promise((r) => setTimeout(r, LIFETIME_MS + 200));
process.stdout.write('ready\n');

process.stdin.resume();
process.stdin.once('end', async () => {
  stopping = true;
  clearInterval(scrapeTimer);
  if (joinTimer !== null) {
    clearInterval(joinTimer);
  }
  while (inFlight > 0) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const closing = live.map(({ client }) => client.close(true).catch(() => {}));
  stats.leaves += live.length;
  live.length = 0;
  await Promise.all(closing);
  const q = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? null : s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  process.stdout.write(
    `${JSON.stringify({
      scrapes: stats.scrapes,
      scrapeErrors: stats.scrapeErrors,
      scrapeBytes: stats.scrapeBytes,
      scrapeMsP50: q(stats.scrapeMs, 0.5),
      scrapeMsMax: q(stats.scrapeMs, 1),
      joins: stats.joins,
      joinErrors: stats.joinErrors,
      skippedJoins: stats.skippedJoins,
      leaves: stats.leaves,
      joinMsP50: q(stats.joinMs, 0.5),
      joinMsP99: q(stats.joinMs, 0.99),
    })}\n`,
  );
  process.exit(0);
});
