// Presigned URLs for storage.redirect, built without a server: path style or virtual-hosted as the driver is
// configured, signed with Signature V4 for the method asked, and never longer-lived than V4 allows.
import assert from 'node:assert/strict';
import { S3Client } from '@aws-sdk/client-s3';
import { MAX_PRESIGN_SECONDS, presignedURL } from '../../../src/storage/drivers/s3/presign.js';
import { S3Driver } from '../../../src/storage/drivers/s3/index.js';
import { resolveConfig } from '../../../src/config/load.js';

const credentials = { accessKeyId: 'AKIDBERTH', secretAccessKey: 'berth-secret' };

describe('s3 driver: presigned redirect URLs', function () {
  it('signs a GET on the endpoint, path style, for the number of seconds asked', async function () {
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:8333',
      forcePathStyle: true,
      credentials,
    });
    try {
      const url = new URL(await presignedURL(client, 'images', 'reg/a/data', { method: 'GET', expiresInSeconds: 300 }));
      assert.equal(url.origin, 'http://127.0.0.1:8333');
      assert.equal(url.pathname, '/images/reg/a/data');
      assert.equal(url.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
      assert.equal(url.searchParams.get('X-Amz-Expires'), '300');
      assert.match(url.searchParams.get('X-Amz-Credential') ?? '', /^AKIDBERTH\/\d{8}\/us-east-1\/s3\/aws4_request$/);
      assert.equal(url.searchParams.get('X-Amz-SignedHeaders'), 'host');
    } finally {
      client.destroy();
    }
  });

  it('uses the virtual-hosted form on AWS, and signs HEADs differently from GETs', async function () {
    const client = new S3Client({ region: 'eu-west-1', credentials });
    try {
      const get = new URL(await presignedURL(client, 'images', 'k', { method: 'GET', expiresInSeconds: 60 }));
      const head = new URL(await presignedURL(client, 'images', 'k', { method: 'HEAD', expiresInSeconds: 60 }));
      assert.equal(get.host, 'images.s3.eu-west-1.amazonaws.com');
      assert.equal(get.pathname, '/k');
      assert.notEqual(get.searchParams.get('X-Amz-Signature'), head.searchParams.get('X-Amz-Signature'));
    } finally {
      client.destroy();
    }
  });

  it('keeps the expiry within what Signature V4 allows (1 second to 7 days)', async function () {
    const client = new S3Client({ region: 'us-east-1', credentials });
    try {
      const long = new URL(await presignedURL(client, 'b', 'k', { method: 'GET', expiresInSeconds: 30 * 86_400 }));
      assert.equal(long.searchParams.get('X-Amz-Expires'), String(MAX_PRESIGN_SECONDS));
      const short = new URL(await presignedURL(client, 'b', 'k', { method: 'GET', expiresInSeconds: 0 }));
      assert.equal(short.searchParams.get('X-Amz-Expires'), '1');
    } finally {
      client.destroy();
    }
  });

  it('gives the driver’s URL for a path under rootdirectory, and refuses a bad path', async function () {
    const { storage } = resolveConfig({
      storage: {
        s3: {
          bucket: 'images',
          regionendpoint: '127.0.0.1:8333',
          secure: false,
          forcepathstyle: true,
          rootdirectory: '/registry',
          accesskey: credentials.accessKeyId,
          secretkey: credentials.secretAccessKey,
        },
      },
    });
    assert.equal(storage.driver, 's3');
    const driver = new S3Driver(storage);
    try {
      const url = new URL(await driver.redirectURL('/docker/a/data', { method: 'GET', expiresInSeconds: 1200 }));
      assert.equal(url.origin, 'http://127.0.0.1:8333');
      assert.equal(url.pathname, '/images/registry/docker/a/data');
      await assert.rejects(driver.redirectURL('/../x', { method: 'GET', expiresInSeconds: 60 }), /InvalidPath/);
    } finally {
      await driver.close();
    }
  });
});
