// Prometheus for tests: reading the text exposition format, and a real Prometheus server (the Debian package) that
// scrapes Berth's debug listener on loopback and answers PromQL through its HTTP API.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, tempDir } from './harness.js';
import { freePort } from './redis.js';

export const PROMETHEUS = '/usr/bin/prometheus';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function unescape(value: string): string {
  return value.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses the Prometheus text format (comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ''] = unescape(l[2] ?? '');
    const raw = m[3] ?? 'NaN';
    samples.push({
      name: m[1] ?? '',
      labels,
      value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw),
    });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function sumOf(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** GETs a registry's /metrics and parses it. */
export async function scrape(debugUrl: string, path = '/metrics'): Promise<Sample[]> {
  const res = await fetch(`${debugUrl}${path}`);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}`);
  return parseMetrics(await res.text());
}

export interface PrometheusServer {
  readonly url: string;
  /** An instant query; the vector's samples (labels and value). */
  query(promql: string): Promise<Array<{ labels: Record<string, string>; value: number }>>;
  /** The values `label` takes on the series `selector` matches: what Grafana's `label_values(selector, label)` lists. */
  labelValues(label: string, selector: string): Promise<string[]>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

interface QueryResponse {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

interface LabelValuesResponse {
  status: string;
  error?: string;
  data?: string[];
}

/** Scrape jobs by name, each with its `host:port` targets. */
export type ScrapeJobs = Readonly<Record<string, readonly string[]>>;

export interface PrometheusOptions {
  /** Also scrape Prometheus's own /metrics, as this job: a process that is not Berth, with process metrics too. */
  readonly selfJob?: string;
}

const STARTUP_MS = 30_000;

/**
 * Starts Prometheus on a free loopback port, scraping each `host:port` target's `/metrics` every `intervalSeconds`:
 * a plain list as one job named `berth`, or jobs by name. Resolves once Prometheus reports ready.
 */
export async function startPrometheus(
  targets: readonly string[] | ScrapeJobs,
  intervalSeconds = 1,
  options: PrometheusOptions = {},
): Promise<PrometheusServer> {
  const dir = await tempDir('berth-prometheus-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const jobs: ScrapeJobs = {
    ...(isTargetList(targets) ? { berth: targets } : targets),
    ...(options.selfJob === undefined ? {} : { [options.selfJob]: [`127.0.0.1:${port}`] }),
  };
  const config = [
    'global:',
    `  scrape_interval: ${intervalSeconds}s`,
    `  scrape_timeout: ${intervalSeconds}s`,
    'scrape_configs:',
    ...Object.entries(jobs).flatMap(([job, hosts]) => [
      `  - job_name: ${JSON.stringify(job)}`,
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: [${hosts.map((t) => JSON.stringify(t)).join(', ')}]`,
    ]),
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  const child: ChildProcess = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = once(child, 'exit');
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await removeDir(dir);
  };
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    if (child.exitCode !== null) {
      await removeDir(dir);
      throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready in ${STARTUP_MS}ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop,
    query: async (promql) => {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await res.json()) as QueryResponse;
      if (body.status !== 'success' || body.data === undefined)
        throw new Error(`query ${promql} failed: ${body.error ?? res.status}`);
      return body.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
    },
    labelValues: async (label, selector) => {
      const res = await fetch(
        `${url}/api/v1/label/${encodeURIComponent(label)}/values?match[]=${encodeURIComponent(selector)}`,
      );
      const body = (await res.json()) as LabelValuesResponse;
      if (body.status !== 'success' || body.data === undefined)
        throw new Error(`label values of ${label} on ${selector} failed: ${body.error ?? res.status}`);
      return body.data;
    },
  };
}

function isTargetList(targets: readonly string[] | ScrapeJobs): targets is readonly string[] {
  return Array.isArray(targets);
}
