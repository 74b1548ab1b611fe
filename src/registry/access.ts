// The scopes each endpoint needs, as Distribution asks for them: what a token must grant or the policy allow.
import { CATALOG_SCOPE, repositoryScope, type Scope } from '../auth/index.js';
import { isValidName } from '../oci/names.js';
import { queryString } from './http.js';
import type { RouteName } from './routes.js';

export interface RequiredAccess {
  /** Scopes without which the request is refused. */
  readonly needed: readonly Scope[];
  /** Scopes the handler uses when granted (a mount's source) and does without otherwise; the challenge asks for them. */
  readonly wanted: readonly Scope[];
}

const NONE: RequiredAccess = { needed: [], wanted: [] };

export function requiredAccess(
  route: RouteName,
  method: string,
  name: string,
  query: Readonly<Record<string, unknown>>,
): RequiredAccess {
  const reading = method === 'GET' || method === 'HEAD';
  switch (route) {
    case 'base':
      return NONE;
    case 'catalog':
      return { needed: [CATALOG_SCOPE], wanted: [] };
    case 'tags':
    case 'referrers':
      return { needed: [repositoryScope(name, 'pull')], wanted: [] };
    case 'manifest':
    case 'blob':
      if (reading) return { needed: [repositoryScope(name, 'pull')], wanted: [] };
      if (method === 'DELETE') return { needed: [repositoryScope(name, 'delete')], wanted: [] };
      return { needed: [repositoryScope(name, 'pull', 'push')], wanted: [] };
    case 'upload-start': {
      const from = queryString(query['from']);
      const mount = queryString(query['mount']);
      const source =
        mount !== undefined && from !== undefined && from !== name && isValidName(from)
          ? [repositoryScope(from, 'pull')]
          : [];
      return { needed: [repositoryScope(name, 'pull', 'push')], wanted: source };
    }
    case 'upload':
      return { needed: [repositoryScope(name, 'pull', 'push')], wanted: [] };
  }
}
