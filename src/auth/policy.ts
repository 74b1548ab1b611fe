// Berth's access policy: ordered repository globs, each mapping principals (users, `@groups`, `authenticated`,
// `anonymous`) to actions. The first rule whose glob matches a repository decides it; no rule, no access.
import type { PolicyConfig } from '../config/auth.js';
import { covers, type Action, type Grant } from './scope.js';

interface Rule {
  readonly globs: readonly RegExp[];
  readonly access: ReadonlyMap<string, ReadonlySet<Action>>;
}

/** A repository glob as a RegExp: `**` spans segments, `*` stays within one, `?` is one character but `/`. */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? '';
    if (c === '*' && glob[i + 1] === '*') {
      // `a/**` matches `a` itself too, and `**/b` any depth including none.
      if (glob[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

export class Policy {
  readonly #rules: readonly Rule[];
  readonly #groups: ReadonlyMap<string, readonly string[]>;
  readonly #catalog: ReadonlySet<string>;
  /** Whether anonymous clients may do anything at all (if not, /v2/ asks them to log in). */
  readonly anonymousAccess: boolean;

  constructor(config: PolicyConfig) {
    this.#rules = config.rules.map((r) => ({
      globs: (Array.isArray(r.repository) ? r.repository : [r.repository]).map(globToRegExp),
      access: new Map(Object.entries(r.access).map(([who, actions]) => [who, new Set(actions)])),
    }));
    const groups = new Map<string, string[]>();
    for (const [group, members] of Object.entries(config.groups)) {
      for (const user of members) groups.set(user, [...(groups.get(user) ?? []), `@${group}`]);
    }
    this.#groups = groups;
    this.#catalog = new Set(config.catalog);
    this.anonymousAccess = this.#catalog.has('anonymous') || this.#rules.some((r) => r.access.has('anonymous'));
  }

  /** The principals a client is: anonymous, or a user with `authenticated`, its name and its groups. */
  principals(user: string | undefined): readonly string[] {
    if (user === undefined) return ['anonymous'];
    return ['anonymous', 'authenticated', user, ...(this.#groups.get(user) ?? [])];
  }

  /** The actions a client has on a repository. */
  actions(user: string | undefined, repository: string): ReadonlySet<Action> {
    const rule = this.#rules.find((r) => r.globs.some((g) => g.test(repository)));
    const granted = new Set<Action>();
    if (rule === undefined) return granted;
    for (const who of this.principals(user)) for (const a of rule.access.get(who) ?? []) granted.add(a);
    return granted;
  }

  /** The grant of one client. */
  grant(user: string | undefined): Grant {
    const principals = this.principals(user);
    const catalog = principals.some((p) => this.#catalog.has(p));
    return {
      user,
      allows: (type, name, action) =>
        type === 'registry' ? name === 'catalog' && catalog : covers(this.actions(user, name), action),
    };
  }
}
