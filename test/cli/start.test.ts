// `npm start` as a user runs it: a stop signal to the npm process stops the registry too, after its drain, leaving no
// process behind and nothing listening. npm runs in its own session, so whatever it started is found after npm is gone.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, removeDir, tempDir } from '../helpers/harness.js';
import { httpRequest } from '../helpers/images.js';

/** The processes (pid and command line) in session `sid`, orphans included. */
async function sessionMembers(sid: number): Promise<string[]> {
  const members: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // After "pid (comm)": state, ppid, pgrp, session.
      const session = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
      if (session !== sid) continue;
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      members.push(`${entry} ${cmdline.split('\0').join(' ').trim()}`);
    } catch {
      // it exited while we looked
    }
  }
  return members;
}

/** Polls `check` every 100 ms until it returns true or `ms` pass; returns whether it did. */
async function eventually(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await httpRequest(url, { timeoutMs: 2_000 })).status === 200;
  } catch {
    return false;
  }
}

describe('npm start @integration', function () {
  this.timeout(60_000);
  let dir: string;
  let npm: ChildProcess | undefined;
  let output: string;
  /** Settles once every process that held npm's stdout has gone, so `output` is whole. */
  let outputClosed: Promise<void>;

  beforeEach(async () => {
    dir = await tempDir('berth-start-');
    output = '';
  });

  afterEach(async () => {
    // Whatever a failed case left running is in npm's session.
    if (npm?.pid !== undefined)
      for (const member of await sessionMembers(npm.pid)) {
        try {
          process.kill(Number(member.split(' ')[0]), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    npm = undefined;
    await removeDir(dir);
  });

  /** Runs `npm start` in its own session and resolves with the registry's URL once GET /v2/ answers. */
  async function start(): Promise<{ pid: number; url: string }> {
    const child = spawn('npm', ['start'], {
      cwd: REPO_ROOT,
      detached: true,
      env: {
        PATH: process.env['PATH'] ?? '',
        ...(process.env['HOME'] === undefined ? {} : { HOME: process.env['HOME'] }),
        REGISTRY_HTTP_ADDR: '127.0.0.1:0',
        REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0',
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    npm = child;
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    outputClosed = new Promise((resolve) => child.stdout?.once('close', () => resolve()));
    const addr = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        output += `${line}\n`;
        const match = /"msg":"listening"/.test(line) ? /"addr":"[^"]*:(\d+)"/.exec(line) : null;
        if (match?.[1] !== undefined) resolve(`http://127.0.0.1:${match[1]}`);
      });
      child.once('exit', (code) => reject(new Error(`npm start exited with ${code}:\n${output}`)));
      setTimeout(() => reject(new Error(`npm start did not listen in 30 s:\n${output}`)), 30_000).unref();
    });
    assert.ok(await eventually(10_000, () => answers(`${addr}/v2/`)), `GET ${addr}/v2/ does not answer`);
    assert.ok(child.pid !== undefined);
    return { pid: child.pid, url: addr };
  }

  async function assertAllStopped(pid: number, url: string): Promise<void> {
    assert.ok(await eventually(15_000, async () => !(await answers(`${url}/v2/`))), `${url} still answers`);
    let left: string[] = [];
    const gone = await eventually(15_000, async () => (left = await sessionMembers(pid)).length === 0);
    assert.ok(gone, `still running:\n${left.join('\n')}\n--- output\n${output}`);
    await outputClosed;
    // It drained: one shutdown, to the end.
    assert.match(output, /"msg":"shutting down: finishing in-flight requests"[^]*"msg":"stopped"/, output);
  }

  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    it(`stops the registry when the npm process gets ${signal}`, async () => {
      const { pid, url } = await start();
      process.kill(pid, signal);
      await assertAllStopped(pid, url);
    });
  }

  it('stops the registry on Ctrl-C, which signals npm and the registry both', async () => {
    const { pid, url } = await start();
    process.kill(-pid, 'SIGINT');
    await assertAllStopped(pid, url);
  });
});
