// The gcs driver's redirect URLs (storage.redirect), without a server: a V4 signed URL on Google's endpoint when it
// has a service-account key, and none (the registry streams) against an emulator, without a key, or for a HEAD.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { resolveConfig } from '../../../src/config/load.js';
import { GcsDriver } from '../../../src/storage/drivers/gcs/index.js';

function driver(gcs: Record<string, unknown>): GcsDriver {
  const { storage } = resolveConfig({ storage: { gcs: { bucket: 'images', rootdirectory: 'registry', ...gcs } } });
  assert.equal(storage.driver, 'gcs');
  return new GcsDriver(storage);
}

describe('gcs driver: redirect URLs', function () {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const credentials = {
    type: 'service_account',
    client_email: 'berth@project.iam.gserviceaccount.com',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };

  it('signs a V4 read URL on Google’s endpoint with the service-account key, locally', async function () {
    const url = new URL(
      (await driver({ credentials }).redirectURL('/docker/a/data', { method: 'GET', expiresInSeconds: 600 })) ?? '',
    );
    assert.equal(url.origin, 'https://storage.googleapis.com');
    assert.equal(url.pathname, '/images/registry/docker/a/data');
    assert.equal(url.searchParams.get('X-Goog-Algorithm'), 'GOOG4-RSA-SHA256');
    assert.equal(url.searchParams.get('X-Goog-Expires'), '600');
    assert.match(url.searchParams.get('X-Goog-Credential') ?? '', /^berth@project\.iam\.gserviceaccount\.com\//);
  });

  it('keeps the expiry within seven days', async function () {
    const url = new URL(
      (await driver({ credentials }).redirectURL('/a', { method: 'GET', expiresInSeconds: 30 * 86_400 })) ?? '',
    );
    assert.equal(url.searchParams.get('X-Goog-Expires'), String(7 * 86_400));
  });

  it('hands out none for a HEAD, without a key, or against an emulator endpoint', async function () {
    const options = { method: 'GET', expiresInSeconds: 600 } as const;
    assert.equal(await driver({ credentials }).redirectURL('/a', { ...options, method: 'HEAD' }), undefined);
    assert.equal(await driver({}).redirectURL('/a', options), undefined);
    assert.equal(
      await driver({ credentials, endpoint: 'http://127.0.0.1:4443' }).redirectURL('/a', options),
      undefined,
    );
  });
});
