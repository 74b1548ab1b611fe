// Reading the Authorization header without trusting it: every way it can be wrong ends as `malformed`, never as an
// exception, so a hostile header gets a 401 like any other failed login.

/** Longer headers are refused unread (a Basic header of a 255-character name and a long password is far shorter). */
export const MAX_AUTHORIZATION_LENGTH = 8192;

export type Credentials =
  | { readonly kind: 'none' }
  | { readonly kind: 'basic'; readonly user: string; readonly password: string }
  | { readonly kind: 'bearer'; readonly token: string }
  | { readonly kind: 'malformed'; readonly why: string };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** A compact JWS: three base64url parts (the last may be empty only for `alg: none`, which is refused later). */
const TOKEN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The credentials of an Authorization header (undefined when the request has none). */
export function parseAuthorization(header: string | undefined): Credentials {
  if (header === undefined) return { kind: 'none' };
  if (header.length > MAX_AUTHORIZATION_LENGTH) {
    return { kind: 'malformed', why: `the Authorization header is longer than ${MAX_AUTHORIZATION_LENGTH} bytes` };
  }
  const trimmed = header.trim();
  if (trimmed === '') return { kind: 'malformed', why: 'the Authorization header is empty' };
  const space = trimmed.indexOf(' ');
  const scheme = (space < 0 ? trimmed : trimmed.slice(0, space)).toLowerCase();
  const value = space < 0 ? '' : trimmed.slice(space + 1).trim();
  if (scheme === 'basic') {
    if (!BASE64.test(value) || value.length % 4 !== 0) {
      return { kind: 'malformed', why: 'Basic credentials are not base64' };
    }
    let decoded: string;
    try {
      decoded = utf8.decode(Buffer.from(value, 'base64'));
    } catch {
      return { kind: 'malformed', why: 'Basic credentials are not UTF-8' };
    }
    const colon = decoded.indexOf(':');
    if (colon < 0) return { kind: 'malformed', why: 'Basic credentials have no colon between user and password' };
    const user = decoded.slice(0, colon);
    // `Basic Og==` (":"): what containers/image sends with no credentials configured, after a Basic challenge.
    if (decoded === ':') return { kind: 'none' };
    if (user === '') return { kind: 'malformed', why: 'Basic credentials have an empty user name' };
    return { kind: 'basic', user, password: decoded.slice(colon + 1) };
  }
  if (scheme === 'bearer') {
    if (!TOKEN.test(value)) return { kind: 'malformed', why: 'the bearer token is not a compact JWS' };
    return { kind: 'bearer', token: value };
  }
  return { kind: 'malformed', why: `unsupported Authorization scheme ${JSON.stringify(scheme.slice(0, 20))}` };
}
