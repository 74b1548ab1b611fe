import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { resolveConfig } from '../../../src/config/load.js';
import type { AzureStorageConfig } from '../../../src/config/schema.js';
import { StorageError } from '../../../src/storage/driver.js';
import { AzureDriver } from '../../../src/storage/drivers/azure/index.js';
import { startAzurite, type Azurite } from '../../helpers/azurite.js';
import { runDriverSuite } from '../../suites/driver-suite.js';

const KiB = 1024;

/** The driver's settings as `berth serve` resolves them from `storage.azure`, for this server and container. */
function azureConfig(server: Azurite, container: string, extra: Record<string, unknown> = {}): AzureStorageConfig {
  const { storage } = resolveConfig({
    storage: {
      azure: {
        accountname: server.accountName,
        accountkey: server.accountKey,
        serviceurl: server.serviceUrl,
        container,
        // Failures in these tests are meant: no waiting on retries.
        max_retries: 1,
        ...extra,
      },
    },
  });
  assert.equal(storage.driver, 'azure');
  return storage;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function write(driver: AzureDriver, path: string, content: Buffer, append: boolean): Promise<void> {
  const w = await driver.writer(path, append);
  // 10 KiB writes, as an HTTP body arrives in pieces.
  const pieces = Array.from({ length: Math.ceil(content.length / (10 * KiB)) }, (_, i) =>
    content.subarray(i * 10 * KiB, (i + 1) * 10 * KiB),
  );
  await pipeline(Readable.from(pieces), w.stream);
  await w.commit();
}

/** A proxy in front of Azurite that reports a blob copy pending: what Azure may answer and Azurite never does. */
interface CopyProxy {
  /** The blob service URL through the proxy, for `serviceurl`. */
  readonly serviceUrl: string;
  /** What the proxy saw of copies: `PUT start <path>`, `HEAD pending <path>` (a poll it answered pending), ... */
  readonly requests: string[];
  close(): Promise<void>;
}

/** Starts a proxy that answers each copy, and then the first `pendingPolls` polls of its destination, pending. */
async function startCopyProxy(server: Azurite, pendingPolls: number): Promise<CopyProxy> {
  const target = new URL(server.serviceUrl);
  const requests: string[] = [];
  let pendingLeft = 0;
  const proxy = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const start = req.method === 'PUT' && req.headers['x-ms-copy-source'] !== undefined;
    const abort = req.method === 'PUT' && req.headers['x-ms-copy-action'] === 'abort';
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        const headers = { ...up.headers };
        let label = req.method ?? '';
        if (start) {
          headers['x-ms-copy-status'] = 'pending';
          pendingLeft = pendingPolls;
          label = 'PUT start';
        } else if (abort) {
          label = 'PUT abort';
        } else if (req.method === 'HEAD' && headers['x-ms-copy-status'] !== undefined && pendingLeft > 0) {
          headers['x-ms-copy-status'] = 'pending';
          pendingLeft--;
          label = 'HEAD pending';
        }
        if (start || abort || headers['x-ms-copy-status'] !== undefined) requests.push(`${label} ${url.pathname}`);
        res.writeHead(up.statusCode ?? 502, headers);
        up.pipe(res);
      },
    );
    upstream.on('error', (err) => res.destroy(err));
    req.pipe(upstream);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const { port } = proxy.address() as AddressInfo;
  return {
    serviceUrl: `http://127.0.0.1:${port}${target.pathname}`,
    requests,
    close: async () => {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    },
  };
}

describe('azure driver on Azurite @integration', function () {
  this.timeout(120_000);
  let server: Azurite;
  let container: string;

  before(async function () {
    server = await startAzurite();
    container = await server.createContainer();
  });

  after(async function () {
    await server?.stop();
  });

  // Each test under its own root directory in one container, which the cleanup empties.
  runDriverSuite('azure', async () => {
    const rootdirectory = `/t-${randomBytes(6).toString('hex')}/`;
    const driver = new AzureDriver(azureConfig(server, container, { rootdirectory }));
    const sweeper = new AzureDriver(azureConfig(server, container, { rootdirectory }));
    return {
      driver,
      cleanup: async () => {
        await sweeper.delete('/');
        await sweeper.close();
      },
    };
  });

  describe('blocks, at a small block size', function () {
    let driver: AzureDriver;
    let root: string;

    beforeEach(function () {
      root = `b-${randomBytes(6).toString('hex')}`;
      driver = new AzureDriver(azureConfig(server, container, { rootdirectory: root }), {
        blockSize: 64 * KiB,
        listPageSize: 50,
      });
    });

    afterEach(async function () {
      await driver.delete('/').catch(() => undefined);
      await driver.close();
    });

    async function committedBlocks(path: string): Promise<{ name: string; size: number }[]> {
      const list = await server.client
        .getContainerClient(container)
        .getBlockBlobClient(`${root}${path}`)
        .getBlockList('committed');
      return list.committedBlocks ?? [];
    }

    it('stages a file as blocks that become visible only at commit', async function () {
      const content = randomBytes(300 * KiB + 7);
      const w = await driver.writer('/big', false);
      await pipeline(Readable.from([content]), w.stream);
      // Every block is staged (the stream finished), and the blob is still invisible.
      await assert.rejects(driver.stat('/big'), (err: unknown) => err instanceof StorageError);
      await w.commit();
      assert.equal(w.size(), content.length);
      assert.equal(sha256(await readAll(await driver.reader('/big'))), sha256(content));
      assert.equal((await committedBlocks('/big')).length, 5);
    });

    it('appends by committing the existing blocks before its own, never reading them back', async function () {
      const first = randomBytes(130 * KiB + 1);
      const second = randomBytes(3 * KiB);
      const third = randomBytes(70 * KiB);
      await write(driver, '/upload/data', first, true);
      const before = await committedBlocks('/upload/data');
      await write(driver, '/upload/data', second, true);
      await write(driver, '/upload/data', third, true);
      const after = await committedBlocks('/upload/data');
      assert.deepEqual(
        after.slice(0, before.length).map((b) => b.name),
        before.map((b) => b.name),
      );
      assert.equal(after.length, before.length + 1 + 2);
      const all = Buffer.concat([first, second, third]);
      assert.equal((await driver.stat('/upload/data')).size, all.length);
      assert.equal(sha256(await driver.getContent('/upload/data')), sha256(all));
      const tail = await readAll(await driver.reader('/upload/data', { offset: all.length - 10 }));
      assert.deepEqual(tail, all.subarray(all.length - 10));
    });

    it('appends to a blob it did not write in blocks (putContent) by copying it into blocks', async function () {
      const first = randomBytes(150 * KiB);
      const second = randomBytes(10 * KiB);
      await driver.putContent('/put', first);
      assert.equal((await committedBlocks('/put')).length, 0);
      await write(driver, '/put', second, true);
      assert.equal(sha256(await driver.getContent('/put')), sha256(Buffer.concat([first, second])));
      assert.equal((await committedBlocks('/put')).length, 3 + 1);
    });

    it('refuses to append when the blob changed after the writer opened it, and keeps the new content', async function () {
      await driver.putContent('/raced', Buffer.from('first'));
      const w = await driver.writer('/raced', true);
      await driver.putContent('/raced', Buffer.from('replaced'));
      await pipeline(Readable.from([Buffer.from('-more')]), w.stream);
      await assert.rejects(w.commit(), /ConditionNotMet|condition/i);
      assert.equal((await driver.getContent('/raced')).toString(), 'replaced');
    });

    it('leaves the blob as it was when an appending writer is cancelled after staging blocks', async function () {
      const original = randomBytes(100 * KiB);
      await write(driver, '/kept', original, false);
      const w = await driver.writer('/kept', true);
      assert.equal(w.size(), original.length);
      await pipeline(Readable.from([randomBytes(200 * KiB)]), w.stream);
      await w.cancel();
      assert.equal(sha256(await driver.getContent('/kept')), sha256(original));
      // A later append continues from the original bytes, not from the cancelled ones.
      await write(driver, '/kept', Buffer.from('tail'), true);
      assert.equal(sha256(await driver.getContent('/kept')), sha256(Buffer.concat([original, Buffer.from('tail')])));
    });

    it('moves a blob on the server, byte for byte', async function () {
      const content = randomBytes(200 * KiB + 17);
      await write(driver, '/src', content, false);
      await driver.move('/src', '/dst/blob');
      assert.equal(sha256(await driver.getContent('/dst/blob')), sha256(content));
      await assert.rejects(driver.stat('/src'), (err: unknown) => err instanceof StorageError);
    });

    it('keeps more than 1,000 committed blocks through an append and a move, byte for byte', async function () {
      this.timeout(300_000);
      // 1 KiB blocks: the block-list paths of a large blob (Azure allows 50,000 committed blocks) at a small size.
      const small = new AzureDriver(azureConfig(server, container, { rootdirectory: root }), { blockSize: KiB });
      try {
        const first = randomBytes(1_030 * KiB + 7);
        await write(small, '/blocks/data', first, true);
        const before = await committedBlocks('/blocks/data');
        assert.equal(before.length, 1_031);
        const second = randomBytes(3 * KiB + 1);
        await write(small, '/blocks/data', second, true);
        const after = await committedBlocks('/blocks/data');
        assert.equal(after.length, 1_031 + 4);
        assert.deepEqual(
          after.slice(0, before.length).map((b) => b.name),
          before.map((b) => b.name),
          'the append kept every committed block',
        );
        const all = Buffer.concat([first, second]);
        assert.equal(sha256(await small.getContent('/blocks/data')), sha256(all));
        await small.move('/blocks/data', '/blobs/data');
        assert.equal((await small.stat('/blobs/data')).size, all.length);
        assert.equal(sha256(await readAll(await small.reader('/blobs/data'))), sha256(all));
        await assert.rejects(small.stat('/blocks/data'), (err: unknown) => err instanceof StorageError);
      } finally {
        await small.close();
      }
    });

    it('polls a copy the service answers pending until it succeeds', async function () {
      const proxy = await startCopyProxy(server, 3);
      const slow = new AzureDriver(
        azureConfig(server, container, { rootdirectory: root, serviceurl: proxy.serviceUrl }),
        {
          copyPollMs: 20,
        },
      );
      try {
        const content = randomBytes(100 * KiB + 3);
        await write(slow, '/pending/src', content, false);
        await slow.move('/pending/src', '/pending/dst');
        const copies = proxy.requests.flatMap((r) => (r.endsWith('/pending/dst') ? [r.split(' /')[0]] : []));
        assert.deepEqual(copies, ['PUT start', 'HEAD pending', 'HEAD pending', 'HEAD pending', 'HEAD'], copies.join());
        assert.equal(sha256(await slow.getContent('/pending/dst')), sha256(content));
        await assert.rejects(slow.stat('/pending/src'), (err: unknown) => err instanceof StorageError);
      } finally {
        await slow.close();
        await proxy.close();
      }
    });

    it('stops a copy that stays pending past the timeout, leaves no destination and keeps the source', async function () {
      const proxy = await startCopyProxy(server, Infinity);
      const slow = new AzureDriver(
        azureConfig(server, container, { rootdirectory: root, serviceurl: proxy.serviceUrl }),
        {
          copyPollMs: 20,
          copyTimeoutMs: 300,
        },
      );
      try {
        const content = randomBytes(10 * KiB);
        await write(slow, '/stuck/src', content, false);
        await assert.rejects(slow.move('/stuck/src', '/stuck/dst'), /still pending after 0.3 s; stopped it/);
        assert.ok(
          proxy.requests.some((r) => r.includes('/stuck/dst') && r.startsWith('PUT abort')),
          proxy.requests.join(),
        );
        // Behind the proxy: the destination is gone, the source as it was.
        await assert.rejects(driver.stat('/stuck/dst'), (err: unknown) => err instanceof StorageError);
        assert.equal(sha256(await driver.getContent('/stuck/src')), sha256(content));
      } finally {
        await slow.close();
        await proxy.close();
      }
    });

    it('lists and deletes a directory across listing pages', async function () {
      const names = Array.from({ length: 123 }, (_, i) => `/many/f${String(i).padStart(4, '0')}`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n) => driver.putContent(n, Buffer.from(n))));
      }
      // Directories too, in pages of their own and between the files.
      const dirs = Array.from({ length: 60 }, (_, i) => `/many/d${String(i).padStart(4, '0')}`);
      await Promise.all(dirs.map((d) => driver.putContent(`${d}/x`, Buffer.from(d))));
      assert.deepEqual((await driver.list('/many')).sort(), [...names, ...dirs].sort());
      await driver.delete('/many');
      await assert.rejects(driver.list('/many'), (err: unknown) => err instanceof StorageError);
    });

    it('hands out a read-only SAS URL that reads the blob without credentials', async function () {
      await driver.putContent('/sas/blob', Buffer.from('through the redirect'));
      const url = await driver.redirectURL('/sas/blob', { method: 'GET', expiresInSeconds: 60 });
      assert.ok(url !== undefined);
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'through the redirect');
      const put = await fetch(url, { method: 'PUT', body: 'x', headers: { 'x-ms-blob-type': 'BlockBlob' } });
      assert.equal(put.status, 403, 'the URL only reads');
    });
  });

  describe('failures', function () {
    it('refuses a wrong key with an error that names the settings to check', async function () {
      const driver = new AzureDriver(
        azureConfig(server, container, { accountkey: randomBytes(64).toString('base64') }),
      );
      try {
        for (const call of [() => driver.stat('/'), () => driver.getContent('/x'), () => driver.list('/')]) {
          await assert.rejects(call(), (err: unknown) => {
            assert.ok(!(err instanceof StorageError), `a wrong key is no missing path: ${String(err)}`);
            assert.match(String(err), /refused the credentials/);
            assert.match(String(err), /storage\.azure\.accountname and storage\.azure\.accountkey/);
            assert.ok(String(err).includes(`container ${container} at ${server.serviceUrl}`), String(err));
            return true;
          });
        }
      } finally {
        await driver.close();
      }
    });

    it('names the container setting when the container does not exist', async function () {
      const driver = new AzureDriver(azureConfig(server, 'no-such-container'));
      try {
        for (const call of [
          () => driver.stat('/'),
          () => driver.stat('/x'),
          () => driver.putContent('/x', Buffer.from('x')),
        ]) {
          await assert.rejects(
            call(),
            /container no-such-container at .*: the container does not exist \(storage\.azure\.container\)/,
          );
        }
      } finally {
        await driver.close();
      }
    });

    it('names the endpoint when nothing answers there', async function () {
      const driver = new AzureDriver(
        azureConfig(server, container, { serviceurl: `http://127.0.0.1:9/${server.accountName}`, max_retries: 0 }),
      );
      try {
        await assert.rejects(driver.stat('/'), /azure: container .* at http:\/\/127\.0\.0\.1:9\/.*ECONNREFUSED/);
      } finally {
        await driver.close();
      }
    });

    it('without a key, says that the default credential chain found no identity, and which settings choose one', async function () {
      // https, as tokens are never sent in clear; the chain fails before any request reaches the endpoint.
      const driver = new AzureDriver(
        azureConfig(server, container, { accountkey: '', serviceurl: `https://127.0.0.1:9/${server.accountName}` }),
      );
      try {
        await assert.rejects(driver.stat('/'), (err: unknown) => {
          assert.ok(!(err instanceof StorageError), String(err));
          assert.match(String(err), /no token for the storage account \(AggregateAuthenticationError: /);
          assert.match(String(err), /DefaultAzureCredential.*or set storage\.azure\.accountkey/);
          return true;
        });
      } finally {
        await driver.close();
      }
    });

    it('works from a connection string alone', async function () {
      const { storage } = resolveConfig({
        storage: { azure: { connectionstring: server.connectionString, container } },
      });
      assert.equal(storage.driver, 'azure');
      const driver = new AzureDriver(storage);
      try {
        await driver.putContent('/cs/file', Buffer.from('via connection string'));
        assert.equal((await driver.getContent('/cs/file')).toString(), 'via connection string');
        await driver.delete('/cs');
      } finally {
        await driver.close();
      }
    });
  });
});
