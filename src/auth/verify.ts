// `berth verify`'s look at the files the auth section names: a bad htpasswd line or an unusable key bundle is
// named before a deploy. A file that does not exist here is only noted: configs are often checked away from where
// they run, and `berth serve` refuses to start without it.
import { access } from 'node:fs/promises';
import type { AuthConfig } from '../config/auth.js';
import { readHtpasswd } from './htpasswd.js';
import { loadKeys } from './token.js';

export interface FileReport {
  readonly problems: string[];
  readonly notes: string[];
}

async function present(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export async function checkAuthFiles(auth: AuthConfig | undefined): Promise<FileReport> {
  const report: FileReport = { problems: [], notes: [] };
  const check = async (field: string, path: string, read: () => Promise<unknown>): Promise<void> => {
    if (!(await present(path))) {
      report.notes.push(`${field}: ${path} does not exist here; berth serve needs it`);
      return;
    }
    try {
      await read();
    } catch (err) {
      report.problems.push(`${field}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  if (auth?.htpasswd !== undefined) {
    const path = auth.htpasswd.path;
    await check('auth.htpasswd.path', path, () => readHtpasswd(path));
  }
  const token = auth?.token;
  if (token !== undefined) {
    const bundle = token.rootcertbundle ?? '';
    if (bundle !== '') {
      await check('auth.token.rootcertbundle', bundle, () => loadKeys({ ...token, jwks: undefined }));
    }
    const jwks = token.jwks ?? '';
    if (jwks !== '' && !/^https?:\/\//.test(jwks)) {
      await check('auth.token.jwks', jwks, () => loadKeys({ ...token, rootcertbundle: undefined }));
    }
  }
  return report;
}
