// Signed upload locations (`http.secret`): the Location of an upload session carries `_state`, an HMAC over the
// repository, the upload id, its start time and the user, so an upload id alone is worth nothing: it cannot be
// guessed, used in another repository or by another user, and every replica with the same secret accepts it.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RegistryError } from '../oci/errors.js';

const STATE = /^(\d{1,15})\.([A-Za-z0-9_-]{43})$/;

export class UploadSigner {
  readonly #secret: Buffer;

  constructor(secret: string) {
    this.#secret = Buffer.from(secret, 'utf8');
  }

  #mac(name: string, id: string, startedAt: number, user: string | undefined): Buffer {
    return createHmac('sha256', this.#secret)
      .update(`berth-upload\0${name}\0${id}\0${startedAt}\0${user ?? ''}`)
      .digest();
  }

  /** The `_state` value of a session. */
  sign(name: string, id: string, startedAt: Date, user: string | undefined): string {
    const ms = startedAt.getTime();
    return `${ms}.${this.#mac(name, id, ms, user).toString('base64url')}`;
  }

  /**
   * Checks a request's `_state`; throws BLOB_UPLOAD_UNKNOWN (as for an id that does not exist, so a wrong guess
   * learns nothing) when it is missing or was not signed for this repository, id and user.
   */
  verify(state: string | undefined, name: string, id: string, user: string | undefined): void {
    const m = state === undefined ? null : STATE.exec(state);
    const ok =
      m !== null && timingSafeEqual(Buffer.from(m[2] ?? '', 'base64url'), this.#mac(name, id, Number(m[1]), user));
    if (!ok) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id: id.slice(0, 100) } });
  }
}
