// TLS on the registry listener, with a test CA made by openssl: certificates rotated mid-traffic (connections in
// flight finish on the old one, new ones get the new one), mutual TLS through clientcas, TLS 1.1 refused, and the
// debug listener left on plain HTTP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, readFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import {
  connect,
  createServer as createTlsServer,
  type ConnectionOptions,
  type PeerCertificate,
  type TLSSocket,
} from 'node:tls';
import { removeDir, startInProcess, tempDir, type InProcessRegistry } from '../helpers/harness.js';
import { issueCert, makeCa, type TestCa } from '../helpers/token-issuer.js';

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly peer: PeerCertificate;
}

/** One HTTPS request on its own connection; resolves with the status and the server certificate it saw. */
function httpsRequest(url: string, options: RequestOptions & { body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, ...options }, (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, peer }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Whether a TLS handshake with `options` succeeds (resolves with the error message when it does not). */
function handshake(port: number, options: ConnectionOptions): Promise<string | 'ok'> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
      // With TLS 1.3 a refused client certificate shows after the handshake: wait for a byte or the close.
      socket.write('GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (err) => resolve(err.message));
    socket.on('close', () => resolve(data.startsWith('HTTP/1.1') ? 'ok' : `closed: ${data.slice(0, 80)}`));
  });
}

describe('registry TLS @integration', function () {
  this.timeout(60_000);
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let caPem: Buffer;
  let a: { cert: string; key: string };
  let b: { cert: string; key: string };

  before(async function () {
    dir = await tempDir('berth-tls-');
    ca = await makeCa(dir, 'ca');
    otherCa = await makeCa(dir, 'other-ca');
    caPem = await readFile(ca.caCert);
    a = await issueCert(dir, ca, 'server-a', 'server');
    b = await issueCert(dir, ca, 'server-b', 'server');
  });
  after(async function () {
    await removeDir(dir);
  });

  describe('with a certificate that rotates', function () {
    let reg: InProcessRegistry;
    let url: string;
    const live = { cert: '', key: '' };

    before(async function () {
      live.cert = join(dir, 'live.crt');
      live.key = join(dir, 'live.key');
      await copyFile(a.cert, live.cert);
      await copyFile(a.key, live.key);
      reg = await startInProcess({ http: { tls: { certificate: live.cert, key: live.key } } }, undefined, {
        filePollMs: 100,
      });
      url = `https://127.0.0.1:${reg.registry.address.port}`;
    });
    after(async function () {
      await reg?.close();
    });

    it('serves the API over TLS and the debug listener over plain HTTP', async function () {
      const res = await httpsRequest(`${url}/v2/`, { ca: caPem });
      assert.equal(res.status, 200);
      assert.equal(res.peer.subject.CN, 'server-a');
      assert.equal((await fetch(`${reg.debugUrl}/healthz`)).status, 200);
      assert.equal((await fetch(`${reg.debugUrl}/readyz`)).status, 200);
    });

    it('refuses TLS 1.1, and takes 1.2 and 1.3', async function () {
      const old = { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0', ca: caPem } as const;
      // A control server that allows 1.1 shows this client can speak it, so the refusal is the registry's doing.
      const control = createTlsServer({
        cert: await readFile(a.cert),
        key: await readFile(a.key),
        minVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
      });
      control.on('secureConnection', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
      await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
      const controlPort = (control.address() as AddressInfo).port;
      const canSpeak11 = (await handshake(controlPort, old)) === 'ok';
      control.close();
      const port = reg.registry.address.port;
      assert.notEqual(await handshake(port, old), 'ok', 'a TLS 1.1 client was accepted');
      if (!canSpeak11) console.log('      (this OpenSSL cannot speak TLS 1.1 at all, so the refusal is not only ours)');
      assert.equal(await handshake(port, { ca: caPem, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), 'ok');
      assert.equal(await handshake(port, { ca: caPem, minVersion: 'TLSv1.3' }), 'ok');
    });

    it('rotates the certificate mid-traffic: in-flight uploads finish, new connections see the new one', async function () {
      const session = await httpsRequest(`${url}/v2/rotate/app/blobs/uploads/`, { method: 'POST', ca: caPem });
      assert.equal(session.status, 202);
      const location = session.headers['location'] ?? '';
      // An upload in flight on the old certificate: half its body sent, then the rotation, then the rest.
      const data = randomBytes(256 * 1024);
      let inflightPeer: PeerCertificate | undefined;
      let sendRest = (): void => undefined;
      const inflight = new Promise<number>((resolve, reject) => {
        const req = request(
          `${url}${location}`,
          {
            method: 'PATCH',
            ca: caPem,
            agent: false,
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length },
          },
          (res) => {
            inflightPeer = (res.socket as TLSSocket).getPeerCertificate();
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.write(data.subarray(0, data.length / 2));
        sendRest = () => req.end(data.subarray(data.length / 2));
      });
      const rotated = (async () => {
        await new Promise((r) => setTimeout(r, 200));
        // The certificate first and the key a moment later, as a non-atomic writer would: the half-rotated pair
        // does not load, and the old one keeps serving until the key matches.
        await copyFile(b.cert, live.cert);
        await new Promise((r) => setTimeout(r, 300));
        const during = await httpsRequest(`${url}/v2/`, { ca: caPem });
        assert.equal(during.status, 200, 'serving during a half-written rotation');
        await copyFile(b.key, live.key);
        const deadline = Date.now() + 10_000;
        for (;;) {
          const res = await httpsRequest(`${url}/v2/`, { ca: caPem });
          if (res.peer.subject.CN === 'server-b') break;
          if (Date.now() > deadline) throw new Error('the new certificate was not served within 10 s');
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await rotated;
      sendRest();
      assert.equal(await inflight, 202, 'the upload in flight finished');
      assert.equal(inflightPeer?.subject.CN, 'server-a', 'the in-flight connection kept its certificate');
      const after = await httpsRequest(`${url}/v2/`, { ca: caPem });
      assert.equal(after.peer.subject.CN, 'server-b');
      const ready = (await (await fetch(`${reg.debugUrl}/readyz`)).json()) as { checks: Record<string, string> };
      assert.equal(ready.checks['tls'], 'ok');
    });
  });

  describe('with client certificates (clientcas)', function () {
    let reg: InProcessRegistry;
    let port: number;
    let client: { cert: string; key: string };
    let stranger: { cert: string; key: string };

    before(async function () {
      client = await issueCert(dir, ca, 'client', 'client');
      stranger = await issueCert(dir, otherCa, 'stranger', 'client');
      reg = await startInProcess({ http: { tls: { certificate: a.cert, key: a.key, clientcas: [ca.caCert] } } });
      port = reg.registry.address.port;
    });
    after(async function () {
      await reg?.close();
    });

    it('serves a client whose certificate the CA issued', async function () {
      const res = await httpsRequest(`https://127.0.0.1:${port}/v2/`, {
        ca: caPem,
        cert: await readFile(client.cert),
        key: await readFile(client.key),
      });
      assert.equal(res.status, 200);
    });

    it('refuses a client without a certificate, or with one of another CA', async function () {
      assert.notEqual(await handshake(port, { ca: caPem }), 'ok');
      const other = { ca: caPem, cert: await readFile(stranger.cert), key: await readFile(stranger.key) };
      assert.notEqual(await handshake(port, other), 'ok');
      assert.notEqual(await handshake(port, { ...other, maxVersion: 'TLSv1.2' }), 'ok');
    });
  });
});
