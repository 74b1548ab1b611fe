// BENCH_SUITE=auth: what access control and TLS cost. Berth and Distribution 3 verify the same Bearer token (ES256,
// signed by a test issuer key whose self-signed certificate is both registries' rootcertbundle; the token carries it
// as x5c) on a cached HEAD blob; Berth with the token against Berth without auth; and both serving HEAD over TLS with
// the same test certificate. In-memory descriptor caches everywhere. Table to stdout, JSON to
// bench/results/auth-latest.json.
//
// Environment (all optional): BENCH_QUICK, BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_TMPDIR, BENCH_KEEP.
import { randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { issueCert, makeCa, makeSigningKey, sign } from '../test/helpers/token-issuer.js';
import {
  loadSettings,
  loadSummary,
  loadText,
  machineText,
  progress,
  publishReport,
  sha256,
  stopOnSignals,
  workSettings,
} from './common.js';
import { runLoad, type LoadResult } from './load.js';
import { startRegistry, type RunningRegistry } from './registries.js';

const REPO = 'bench/auth';
const IDS = ['berth', 'dist3'] as const;
type Id = (typeof IDS)[number];
const LABELS: Readonly<Record<Id, string>> = { berth: 'Berth', dist3: 'Distribution 3' };

/** One request with Node's own client (http or https, a test certificate accepted): status and headers. */
function send(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const make = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = make(
      url,
      {
        method,
        headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(body.length) }) },
        agent: false,
        rejectUnauthorized: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Pushes one blob (POST, then PUT with the digest) and checks that HEAD answers 200. */
async function seed(base: URL, headers: Record<string, string>, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const started = await send(base, 'POST', `/v2/${REPO}/blobs/uploads/`, headers);
  if (started.status !== 202 || started.location === undefined) throw new Error(`POST upload: HTTP ${started.status}`);
  const put = new URL(started.location, base);
  put.searchParams.set('digest', digest);
  const done = await send(
    base,
    'PUT',
    put.pathname + put.search,
    { ...headers, 'content-type': 'application/octet-stream' },
    blob,
  );
  if (done.status !== 201) throw new Error(`PUT upload: HTTP ${done.status}`);
  const head = await send(base, 'HEAD', `/v2/${REPO}/blobs/${digest}`, headers);
  if (head.status !== 200) throw new Error(`HEAD: HTTP ${head.status}`);
  return digest;
}

interface Row {
  readonly scenario: 'token' | 'none' | 'tls';
  readonly id: Id;
  readonly load: LoadResult;
}

export async function runAuthSuite(): Promise<void> {
  const quick = process.env['BENCH_QUICK'] === '1';
  const s = { quick, ...loadSettings(quick), ...workSettings() };
  const startedAt = new Date();
  const loadBefore = loadavg();
  progress(
    `auth suite${quick ? ' (QUICK)' : ''}: HEAD loads ${s.warmupS}+${s.durationS} s at ${s.connections} connections`,
  );
  const work = await mkdtemp(join(s.tmp, 'berth-bench-auth-'));
  stopOnSignals(work, s.keep, 'registries');
  const rows: Row[] = [];
  try {
    const key = await makeSigningKey(work, 'ES256', 'issuer');
    const ca = await makeCa(work, 'bench-ca');
    const server = await issueCert(work, ca, 'bench-registry', 'server');
    const service = 'berth-bench';
    const issuer = 'berth-bench-issuer';
    const token = await sign(key, {
      issuer,
      audience: service,
      subject: 'bench',
      access: [{ type: 'repository', name: REPO, actions: ['pull', 'push'] }],
      expiresIn: 3600,
      keyRef: 'x5c',
    });
    const tokenAuth = {
      auth: {
        token: { realm: 'https://issuer.invalid/token', service, issuer, rootcertbundle: key.certPath },
      },
    };
    const tls = { http: { tls: { certificate: server.cert, key: server.key } } };
    const blob = randomFillSync(Buffer.alloc(2048));
    const scenarios = [
      { scenario: 'token', ids: IDS, extra: tokenAuth, tls: false, headers: { authorization: `Bearer ${token}` } },
      { scenario: 'none', ids: ['berth'] as const, extra: {}, tls: false, headers: {} },
      { scenario: 'tls', ids: IDS, extra: tls, tls: true, headers: {} },
    ] as const;
    let turn = 0;
    for (const sc of scenarios) {
      const order = turn++ % 2 === 0 ? [...sc.ids] : [...sc.ids].reverse();
      for (const id of order) {
        const dir = join(work, `${sc.scenario}-${id}`);
        await mkdir(dir, { recursive: true });
        let reg: RunningRegistry | undefined;
        try {
          reg = await startRegistry(id, { dir, cache: 'inmemory', extra: sc.extra, tls: sc.tls });
          const digest = await seed(reg.baseUrl, sc.headers, blob);
          const spec = {
            method: 'HEAD',
            url: new URL(`/v2/${REPO}/blobs/${digest}`, reg.baseUrl),
            headers: sc.headers,
          } as const;
          const settings = { connections: s.connections, pid: reg.pid };
          progress(`${LABELS[id]} [${sc.scenario}]: HEAD blob`);
          if (s.warmupS > 0) await runLoad(spec, { ...settings, durationS: s.warmupS });
          const load = await runLoad(spec, { ...settings, durationS: s.durationS });
          rows.push({ scenario: sc.scenario, id, load });
          progress(`  ${loadSummary(load)}`);
        } finally {
          await reg?.stop();
        }
      }
    }
  } finally {
    if (s.keep) progress(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
  const get = (scenario: Row['scenario'], id: Id) => rows.find((r) => r.scenario === scenario && r.id === id)?.load;
  const ratio = (a: LoadResult | undefined, b: LoadResult | undefined): number | undefined =>
    a === undefined || b === undefined || b.requestsPerSecond <= 0
      ? undefined
      : a.requestsPerSecond / b.requestsPerSecond;
  const fmt = (n: number | undefined, d = 2): string => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(d));
  const line = (
    what: string,
    a: LoadResult | undefined,
    b: LoadResult | undefined,
    target: string,
    ok: (r: number) => boolean,
  ) => {
    const r = ratio(a, b);
    return `| ${what} | ${fmt(a?.requestsPerSecond, 0)} | ${fmt(b?.requestsPerSecond, 0)} | ${fmt(r)}× | ${fmt(a?.p50Ms)} / ${fmt(a?.p99Ms)} | ${fmt(b?.p50Ms)} / ${fmt(b?.p99Ms)} | ${target} ${r === undefined ? '' : ok(r) ? '✓' : '✗'} |`;
  };
  const table = [
    '| HEAD blob, in-memory cache | req/s (a) | req/s (b) | a ÷ b | p50 / p99 ms (a) | p50 / p99 ms (b) | target |',
    '|---|--:|--:|--:|--:|--:|---|',
    line(
      'valid Bearer token: (a) Berth, (b) Distribution 3',
      get('token', 'berth'),
      get('token', 'dist3'),
      '≥ 2×',
      (r) => r >= 2,
    ),
    line(
      '(a) Berth with the token, (b) Berth without auth',
      get('token', 'berth'),
      get('none', 'berth'),
      '≥ 0.8',
      (r) => r >= 0.8,
    ),
    line('over TLS: (a) Berth, (b) Distribution 3', get('tls', 'berth'), get('tls', 'dist3'), 'report', () => true),
  ].join('\n');
  const loadAfter = loadavg();
  await publishReport('auth-latest.json', {
    title: '## Access control and TLS: Berth and Distribution 3',
    table,
    notes: [
      'The same ES256 token (x5c: the issuer key’s self-signed certificate, which is each registry’s rootcertbundle) for both; Berth caches a verified token by its signature until it expires, Distribution verifies every request.',
      'TLS: the same test certificate (P-256, made by openssl) for both; autocannon keeps its connections, so this measures requests on established TLS sessions, not handshakes.',
      `${quick ? '**QUICK run**: for checking the harness, not for quoting. ' : ''}HEAD loads ${s.durationS} s after ${s.warmupS} s warm-up at ${s.connections} connections.`,
      `Machine: ${machineText()}; load generator and registries share it. Load average before ${loadText(loadBefore)}, after ${loadText(loadAfter)}.`,
    ],
    startedAt,
    settings: s,
    loadBefore,
    loadAfter,
    extra: { rows },
  });
}
