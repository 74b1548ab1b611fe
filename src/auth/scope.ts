// What a request asks for and what a client may do: resource scopes as the Docker token specification writes them
// (`repository:team-a/app:pull,push`, `registry:catalog:*`), and the grant an access controller hands back.
import type { RepositoryAction } from '../config/auth.js';

export type Action = RepositoryAction;

/** One resource and the actions a request needs on it. */
export interface Scope {
  readonly type: 'repository' | 'registry';
  readonly name: string;
  readonly actions: readonly Action[];
}

export function repositoryScope(name: string, ...actions: Action[]): Scope {
  return { type: 'repository', name, actions };
}

/** Listing /v2/_catalog. */
export const CATALOG_SCOPE: Scope = { type: 'registry', name: 'catalog', actions: ['*'] };

/** `type:name:a,b` for a challenge's scope parameter. */
export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}

/** Whether a set of granted actions covers `action` (`*` covers every action). */
export function covers(granted: ReadonlySet<string> | undefined, action: string): boolean {
  return granted !== undefined && (granted.has('*') || granted.has(action));
}

/** What an authenticated (or anonymous) client may do. */
export interface Grant {
  /** The user name (htpasswd) or the token's subject; undefined for anonymous access. */
  readonly user: string | undefined;
  /** Whether the grant covers `action` on the resource. */
  allows(type: Scope['type'], name: string, action: Action): boolean;
}

/** Everything, for everyone: the grant when no auth is configured. */
export const OPEN_GRANT: Grant = { user: undefined, allows: () => true };

/** Whether `grant` covers every action of every scope. */
export function allowsAll(grant: Grant, scopes: readonly Scope[]): boolean {
  return scopes.every((s) => s.actions.every((a) => grant.allows(s.type, s.name, a)));
}
