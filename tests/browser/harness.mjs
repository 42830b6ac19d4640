// harness: the real sinergi daemon on 127.0.0.1 with a temporary database (as tests/api/harness.py
// does), Debian's chromium driven by playwright-core, and a small HTTP client for the API.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.SINERGI_BIN || path.join(ROOT, 'sinergi');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}


export class Daemon {
  constructor({ env = {}, args = [] } = {}) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'sinergi-browser-'));
    this.db = path.join(this.dir, 'sinergi.db');
    this.env = { ...process.env, SINERGI_LOG_LEVEL: 'info', SINERGI_SEED_DEMO: '1', ...env };
    this.args = args;
    this.adminPassword = null;
  }

  get base() { return `http://127.0.0.1:${this.port}`; }

  // Starts (or restarts, on the same port and database) and resolves once it serves.
  async start(timeoutMs = 30000) {
    this.port ||= await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${this.port}`, '--db', this.db,
      '--data-dir', path.join(ROOT, 'data'), '--web-dir', path.join(ROOT, 'web'), ...this.args];
    this.proc = spawn(BIN, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr.pipe(createWriteStream(path.join(this.dir, `stderr.${Date.now()}.log`)));
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.exited = exited;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('sinergi did not start in time')), timeoutMs);
      let buf = '';
      this.proc.stdout.on('data', (chunk) => {
        buf += chunk;
        const m = buf.match(/admin password: (\S+)/);
        if (m) this.adminPassword = m[1];
        if (buf.includes('serving on')) { clearTimeout(timer); resolve(); }
      });
      exited.then((code) => { clearTimeout(timer); reject(new Error(`sinergi exited with ${code} before serving`)); });
    }).catch((e) => { this.proc.kill('SIGKILL'); throw e; });
    return this;
  }

  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(t);
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  // One API request; `body` is sent as JSON unless `type` says otherwise.
  async request(method, p, { body, token, type = 'application/json' } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = type;
    const r = await fetch(this.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, json, text, headers: r.headers };
  }

  async adminToken() {
    const r = await this.request('POST', '/api/v1/auth/login', { body: { username: 'admin', password: this.adminPassword } });
    if (r.status !== 200) throw new Error(`admin login: ${r.status} ${r.text}`);
    return r.json.token;
  }

  async deviceToken(admin, code) {
    const r = await this.request('POST', `/api/v1/stations/${code}/token`, { token: admin });
    if (r.status !== 200) throw new Error(`rotate token of ${code}: ${r.status} ${r.text}`);
    return r.json.device_token;
  }

  // SenML readings of one sensor: [[epochSeconds | null (now), value], ...]
  async ingest(device, code, sensor, points) {
    const pack = points.map(([t, v]) => (t == null ? { n: `${code}:${sensor}`, v } : { n: `${code}:${sensor}`, v, t }));
    const r = await this.request('POST', '/api/v1/ingest', { body: pack, token: device, type: 'application/senml+json' });
    if (r.status !== 200) throw new Error(`ingest ${code}: ${r.status} ${r.text}`);
    return r.json;
  }
}

// Chromium as the machine runs it: headless, no sandbox (root), nothing talking to the outside.
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
}

export async function signIn(page, base, username, password) {
  await page.goto(base + '/');
  await page.getByLabel(/Nama pengguna|Username/).fill(username);
  await page.getByLabel(/Kata sandi|Password/).fill(password);
  await page.getByRole('button', { name: /^(Masuk|Sign in)$/ }).click();
  await page.waitForSelector('body[data-ready="1"]');
}

export const AXE_SOURCE = () => readFileSync(path.join(ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');

// axe-core on the page as it is now; returns the serious and critical violations.
export async function axeSerious(page) {
  await page.evaluate(AXE_SOURCE());
  const res = await page.evaluate(async () => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  }));
  return res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
}

