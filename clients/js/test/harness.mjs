// Test harness: builds cmd/edge once, runs real edges on loopback, mints
// auth keys, and polls with deadlines (never sleeps to wait).
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const secret = 'js-sdk-test-secret-0123456789';

function goBin() {
  for (const p of [process.env.GO, 'go', '/usr/local/go/bin/go']) {
    if (!p) continue;
    try {
      execFileSync(p, ['version'], { stdio: 'ignore' });
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error('go not found (set GO or PATH)');
}

// Edges still running when the test process exits (a failed test) are killed with it.
const running = new Set();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

let built;
/** buildEdge compiles cmd/edge once per test process. */
export function buildEdge() {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'allspark-js-'));
  const bin = join(dir, 'edge');
  execFileSync(goBin(), ['build', '-o', bin, './cmd/edge'], { cwd: repoRoot, stdio: 'inherit' });
  built = { bin, dir };
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return built;
}

/** freePort asks the kernel for an unused loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Edge is one edge process with embedded NATS. kill() is SIGKILL;
 * start() again reuses the same ports and data dir.
 */
export class Edge {
  /** devMode: no ALLSPARK_AUTH_SECRET (the edge generates one: dev tokens on, any origin). */
  constructor({ env = {}, name = 'edge', devMode = false } = {}) {
    this.devMode = devMode;
    this.extraEnv = env;
    this.name = name;
    this.proc = null;
  }

  async init() {
    const { dir } = buildEdge();
    this.dataDir = mkdtempSync(join(dir, 'data-'));
    this.port = await freePort();
    this.natsPort = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.logPath = join(this.dataDir, 'edge.log');
    this.log = createWriteStream(this.logPath, { flags: 'a' });
    return this;
  }

  async start() {
    const { bin } = buildEdge();
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? '/tmp',
      ALLSPARK_LISTEN: `127.0.0.1:${this.port}`,
      ALLSPARK_DATA_DIR: this.dataDir,
      ALLSPARK_EMBEDDED_NATS_LISTEN: `127.0.0.1:${this.natsPort}`,
      ALLSPARK_AUTH_SECRET: secret,
      ALLSPARK_EDGE_ID: this.name,
      ALLSPARK_LOG_LEVEL: 'warn',
      // Several edges run on this host: each picks its own ops port.
      ALLSPARK_OPS_LISTEN: '127.0.0.1:0',
      ...this.extraEnv,
    };
    if (this.devMode) delete env.ALLSPARK_AUTH_SECRET;
    const proc = spawn(bin, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    proc.stdout.pipe(this.log, { end: false });
    proc.stderr.pipe(this.log, { end: false });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
    await waitFor(`edge ${this.name} ready on ${this.url} (log ${this.logPath})`, async () => {
      if (proc.exitCode !== null) throw new Error(`edge exited with ${proc.exitCode}; see ${this.logPath}`);
      try {
        const r = await fetch(this.url + '/readyz');
        return r.status === 200;
      } catch {
        return false;
      }
    }, 60000);
    return this;
  }

  /** kill sends SIGKILL and waits for the process to be gone. */
  async kill() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && !this.proc.signalCode) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
      await this.exited;
      clearTimeout(t);
    }
    this.log?.end();
  }

  cleanup() {
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

const b64url = (b) => Buffer.from(b).toString('base64url');

/** mintKey signs an HS256 auth_key the way auth.Keys.MintAuthKey does. */
export function mintKey(node, { client, ttlSec = 3600, key = secret, now = Date.now() } = {}) {
  const iat = Math.floor(now / 1000);
  const claims = { sub: node, iat, exp: iat + ttlSec };
  if (client) claims.cid = client;
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** waitFor polls check until it returns truthy, or fails naming what it waited for. */
export async function waitFor(what, check, timeoutMs = 30000, everyMs = 20) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
      if (/exited/.test(String(err?.message))) throw err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** nextEvent resolves with the next event of client that matches pred. */
export function nextEvent(client, event, pred = () => true, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for a ${event} event`));
    }, timeoutMs);
    const off = client.on(event, (ev) => {
      if (!pred(ev)) return;
      clearTimeout(t);
      off();
      resolve(ev);
    });
  });
}
