/**
 * The operator HTTP endpoint: /metrics (Prometheus text), /healthz,
 * /readyz (503 while draining), /v2/rooms (JSON). Read-only, GET/HEAD only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WzpError } from '../errors/index.js';

export interface HttpHandlers {
  /** Time a client has to send its request headers (default 10 s, at most 10 s). */
  headerTimeoutMs?: number;
  metrics(): Promise<{ contentType: string; body: string }>;
  ready(): boolean;
  rooms(): Promise<unknown>;
  /** Extra JSON routes (e.g. /v2/peers) keyed by path. */
  extra?: Record<string, () => Promise<unknown>>;
  /** Static pages (the dashboard): answers and returns true when it serves the path. */
  static?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export class HttpServer {
  private readonly server: Server;
  private readonly handlers: HttpHandlers;

  constructor(handlers: HttpHandlers) {
    this.handlers = handlers;
    const headerTimeout = Math.min(10_000, handlers.headerTimeoutMs ?? 10_000);
    this.server = createServer(
      // Timeouts are enforced on this interval (Node's default is 30 s).
      { connectionsCheckingInterval: Math.min(1000, Math.max(100, headerTimeout / 4)) },
      (req, res) => {
        this.route(req, res).catch((err: unknown) => {
          const message = err instanceof Error ? err.message : String(err);
          if (!res.headersSent) {
            sendJson(res, 500, { error: { code: 'INTERNAL', message } });
          } else {
            res.destroy();
          }
        });
      },
    );
    this.server.keepAliveTimeout = Math.min(5_000, headerTimeout);
    this.server.headersTimeout = headerTimeout;
    this.server.requestTimeout = 10_000;
  }

  /** Starts listening; resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(
          new WzpError(
            'TRANSPORT_BIND_FAILED',
            `cannot listen on HTTP ${host}:${port}: ${err.message}`,
            {
              cause: err,
            },
          ),
        );
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.handlers.static?.(req, res) === true) {
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'use GET' } });
      return;
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    switch (path) {
      case '/metrics': {
        const { contentType, body } = await this.handlers.metrics();
        res.writeHead(200, { 'content-type': contentType });
        res.end(body);
        return;
      }
      case '/healthz':
        sendJson(res, 200, { status: 'ok' });
        return;
      case '/readyz': {
        const ready = this.handlers.ready();
        sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'draining' });
        return;
      }
      case '/v2/rooms':
        sendJson(res, 200, await this.handlers.rooms());
        return;
      default: {
        const extra = this.handlers.extra?.[path];
        if (extra !== undefined) {
          sendJson(res, 200, await extra());
          return;
        }
        sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${path}` } });
      }
    }
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
