// Registry garbage collection over Distribution's storage layout, safe while registries keep serving: mark what
// every repository's manifests reach, then sweep unreferenced manifests (with deleteUntagged), links and blobs.
//
// Safety without a read-only window rests on three rules:
// - nothing newer than the grace period is swept (FileInfo.modTime of the blob, link or revision), so a push in
//   flight (blobs uploaded, manifest not yet written) keeps its blobs;
// - every candidate is statted again just before it is deleted, and manifests written since the mark are read and
//   marked before any blob goes;
// - a repository link goes before its blob, and every swept blob is invalidated in the descriptor cache (every
//   tier, every replica), so no registry answers "exists" for bytes that are gone.
// What remains is the window between the last re-check and a delete: a manifest PUT that verified an old,
// unreferenced blob in it fails (MANIFEST_BLOB_UNKNOWN once the link is gone) and the client pushes again.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { digestOrUndefined, type Digest } from '../oci/digest.js';
import { isNotFound, type FileInfo, type StorageDriver } from '../storage/driver.js';
import { noInvalidate, type Invalidate } from '../storage/blobs.js';
import { forEachLimit } from '../storage/drivers/limit.js';
import { paths, REPOSITORIES, REPOSITORY_MARKERS, ROOT } from '../storage/paths.js';

export const GC_PHASES = [
  'repositories',
  'mark',
  'manifests',
  'blobs',
  'links',
  'recheck',
  'sweep',
  'rescan',
  'leftovers',
] as const;
export type GcPhase = (typeof GC_PHASES)[number];

export interface GcProgress {
  readonly phase: GcPhase;
  /** Items handled so far in this phase. */
  readonly done: number;
  /** Items the phase will handle, when known in advance. */
  readonly total: number | undefined;
  /** The phase has finished. */
  readonly end?: boolean;
}

export interface GcOptions {
  readonly driver: StorageDriver;
  /** Told of every swept blob and manifest, as deletes through the API tell the descriptor cache. */
  readonly invalidate?: Invalidate;
  /** Blobs, links and revisions modified less than this long ago are never swept. */
  readonly graceMs: number;
  /** Report what would be swept, and change nothing. */
  readonly dryRun: boolean;
  /** Keep only manifests reachable from tags (and those newer than the grace period); sweep the rest. */
  readonly deleteUntagged: boolean;
  readonly onProgress?: (progress: GcProgress) => void;
  readonly log?: Logger;
  /**
   * Stops the run between two storage calls (shutdown, a lost lease): collectGarbage rejects with the signal's
   * reason. Whatever was swept so far stays swept, each item whole (a link goes before its blob), and the next run
   * picks up the rest.
   */
  readonly signal?: AbortSignal;
  /** The clock (tests). */
  readonly now?: () => number;
  /** Storage calls of one phase in flight at once (DEFAULT_CONCURRENCY). */
  readonly concurrency?: number;
}

/** What one repository gives up. A blob linked into several repositories counts in each. */
export interface RepositorySweep {
  readonly manifests: number;
  readonly links: number;
  readonly blobs: number;
  readonly bytes: number;
}

export interface GcReport {
  readonly dryRun: boolean;
  readonly deleteUntagged: boolean;
  readonly repositories: number;
  readonly manifestsKept: number;
  readonly manifestsSwept: number;
  readonly blobsKept: number;
  /** Unreferenced blobs kept because they (or a link to them) are newer than the grace period. */
  readonly blobsInGrace: number;
  readonly blobsSwept: number;
  readonly bytesFreed: number;
  readonly linksSwept: number;
  /** Temporary files and unfinished uploads that writes cut short left behind, older than the grace period. */
  readonly leftoversSwept: number;
  /** Swept (or, in a dry run, sweepable) blob digests, sorted. */
  readonly sweptBlobs: readonly string[];
  /** Swept manifests as `repository@digest`, sorted. */
  readonly sweptManifests: readonly string[];
  /** Per repository; blobs linked into no repository are under the empty name. */
  readonly perRepository: Readonly<Record<string, RepositorySweep>>;
  /** Corrupt manifests, dangling links and the like: reported, never a reason to sweep. */
  readonly problems: readonly string[];
  readonly durationMs: number;
}

/** Manifest fields that reference blobs (and, for indexes, child manifests): OCI, Docker schema 2 and schema 1. */
interface ManifestRefs {
  readonly blobs: Digest[];
  readonly manifests: Digest[];
}

function referencesOf(content: Buffer): ManifestRefs | undefined {
  let json: unknown;
  try {
    json = JSON.parse(content.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const m = json as Record<string, unknown>;
  const blobs: Digest[] = [];
  const manifests: Digest[] = [];
  const add = (list: Digest[], descriptor: unknown, field: string): void => {
    if (typeof descriptor !== 'object' || descriptor === null) return;
    const d = digestOrUndefined((descriptor as Record<string, unknown>)[field]);
    if (d !== undefined) list.push(d);
  };
  add(blobs, m['config'], 'digest');
  for (const key of ['layers', 'blobs'] as const) {
    const list = m[key];
    if (Array.isArray(list)) for (const d of list) add(blobs, d, 'digest');
  }
  const fsLayers = m['fsLayers'];
  if (Array.isArray(fsLayers)) for (const d of fsLayers) add(blobs, d, 'blobSum');
  const children = m['manifests'];
  if (Array.isArray(children)) for (const d of children) add(manifests, d, 'digest');
  return { blobs, manifests };
}

const base = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

/** Children of a directory as full paths, sorted; none when it is missing. */
async function listDir(driver: StorageDriver, dir: string): Promise<string[]> {
  try {
    return (await driver.list(dir)).sort();
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

async function statOrUndefined(driver: StorageDriver, path: string): Promise<FileInfo | undefined> {
  try {
    return await driver.stat(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Deletes a path that may already be gone. */
async function remove(driver: StorageDriver, path: string): Promise<void> {
  try {
    await driver.delete(path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** Repository names, found one directory at a time as the catalog finds them. */
async function repositoryNames(driver: StorageDriver, dir: string, prefix: string, out: string[]): Promise<void> {
  const children = (await listDir(driver, dir)).map(base);
  if (prefix !== '' && children.some((n) => REPOSITORY_MARKERS.has(n))) out.push(prefix);
  for (const child of children) {
    if (child.startsWith('_')) continue;
    await repositoryNames(driver, `${dir}/${child}`, prefix === '' ? child : `${prefix}/${child}`, out);
  }
}

/** Digests named by `<root>/<alg>/<hex>` directories (revisions, layer links). */
async function* digestDirs(driver: StorageDriver, root: string): AsyncGenerator<Digest> {
  for (const alg of await listDir(driver, root)) {
    for (const entry of await listDir(driver, alg)) {
      const d = digestOrUndefined(`${base(alg)}:${base(entry)}`);
      if (d !== undefined) yield d;
    }
  }
}

const revisionsDir = (name: string): string => `${paths.repository(name)}/_manifests/revisions`;
const layersDir = (name: string): string => `${paths.repository(name)}/_layers`;
const blobDir = (d: Digest): string => paths.blobData(d).slice(0, -'/data'.length);

/**
 * Where a swept blob's bytes wait (as the file `<alg>-<hex>`, all in one directory, so a move there makes no
 * directory) until the run has looked for manifests that raced it, so that they can be put back, by this run or,
 * after a crash, by the next.
 */
export const TRASH = `${ROOT}/_gc-trash`;
const trashFile = (d: Digest): string => `${TRASH}/${d.algorithm}-${d.hex}`;
/**
 * The sweep's journal: before a batch of blobs goes to the trash, one file names them and the repositories whose
 * links go with them (JSON `[[digest, [repository, …]], …]`), so that a crashed run's trash can be put back whole.
 */
export const JOURNAL = `${ROOT}/_gc-journal`;
/** Blobs per journal file: what one sweep batch writes before it moves anything. */
const JOURNAL_BATCH = 1000;

/**
 * Storage calls of one phase in flight at once, by default: collection is latency-bound on every backend. Online
 * collection inside a serving registry asks for fewer, to leave the disk and the thread pool to requests.
 */
export const DEFAULT_CONCURRENCY = 16;

/**
 * Puts a trashed blob back: its bytes (unless the blob was pushed again meanwhile) and its links in `links`; then the
 * trash entry goes.
 */
async function restoreFromTrash(driver: StorageDriver, d: Digest, links: Iterable<string>): Promise<void> {
  if ((await statOrUndefined(driver, paths.blobData(d))) === undefined) {
    try {
      await driver.move(trashFile(d), paths.blobData(d));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if ((await statOrUndefined(driver, paths.blobData(d))) !== undefined) {
    for (const name of new Set(links)) {
      await driver.putContent(paths.layerLink(name, d), Buffer.from(d.value));
    }
  }
  await remove(driver, trashFile(d));
}

/** Trash a crashed run left behind goes back where it was, with its links, so that this run judges it afresh. */
async function recoverTrash(driver: StorageDriver, log?: Logger): Promise<number> {
  const journals = await listDir(driver, JOURNAL);
  const linksOf = new Map<string, string[]>();
  for (const journal of journals) {
    try {
      const entries: unknown = JSON.parse((await driver.getContent(journal)).toString('utf8'));
      if (!Array.isArray(entries)) continue;
      for (const entry of entries) {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !Array.isArray(entry[1])) continue;
        const names = (entry[1] as unknown[]).filter((n): n is string => typeof n === 'string');
        linksOf.set(entry[0], [...(linksOf.get(entry[0]) ?? []), ...names]);
      }
    } catch (err) {
      // A journal cut short by the crash: its batch had not started moving anything.
      if (!isNotFound(err) && !(err instanceof SyntaxError)) throw err;
    }
  }
  let recovered = 0;
  for (const entry of await listDir(driver, TRASH)) {
    const d = digestOrUndefined(base(entry).replace('-', ':'));
    if (d === undefined) continue;
    await restoreFromTrash(driver, d, linksOf.get(d.value) ?? []);
    recovered++;
  }
  for (const journal of journals) await remove(driver, journal);
  if (recovered > 0)
    log?.warn({ recovered }, 'garbage collection: put back blobs an interrupted run left in its trash');
  return recovered;
}

/** Runs one collection. Throws only on storage failures; what it found odd is in `problems`. */
export async function collectGarbage(options: GcOptions): Promise<GcReport> {
  const { driver, graceMs, dryRun, deleteUntagged, log } = options;
  const invalidate = options.invalidate ?? noInvalidate;
  const now = options.now ?? Date.now;
  const CONCURRENCY = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  const started = now();
  const problems: string[] = [];
  const problem = (text: string): void => {
    problems.push(text);
    log?.warn({ problem: text }, 'garbage collection: skipped');
  };
  const young = (info: FileInfo): boolean => now() - info.modTime.getTime() < graceMs;
  const { signal } = options;
  const stopIfAborted = (): void => signal?.throwIfAborted();
  const progress = (phase: GcPhase, done: number, total: number | undefined, end = false): void => {
    stopIfAborted();
    options.onProgress?.({ phase, done, total, ...(end ? { end } : {}) });
  };

  if (!dryRun) await recoverTrash(driver, log);

  // Repositories.
  progress('repositories', 0, undefined);
  const repositories: string[] = [];
  await repositoryNames(driver, REPOSITORIES, '', repositories);
  repositories.sort();
  progress('repositories', repositories.length, repositories.length, true);

  // Mark. `marked` holds every blob digest a kept manifest reaches, manifests' own digests included.
  const marked = new Set<string>();
  /** Each repository's revisions at the mark (referrers are kept only among them). */
  const seenRevisions = new Map<string, Set<string>>();
  const sweepable = new Map<string, Digest[]>();
  /** Repositories with a manifest that cannot be read: every blob linked there is kept. */
  const unsure = new Set<string>();
  let manifestsKept = 0;
  const readManifest = async (name: string, d: Digest): Promise<ManifestRefs | undefined> => {
    let content: Buffer;
    try {
      content = await driver.getContent(paths.blobData(d));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      problem(`${name}@${d.value}: the revision link is dangling (no manifest bytes)`);
      return undefined;
    }
    const refs = referencesOf(content);
    if (refs === undefined) {
      problem(`${name}@${d.value}: corrupt manifest; the blobs linked into ${name} are kept`);
      unsure.add(name);
    }
    return refs;
  };
  /** Marks a manifest and all it reaches; `reachable` collects the manifests of this repository it kept. */
  const markFrom = async (name: string, root: Digest, revisions: Set<string>, reachable: Set<string>) => {
    const queue: Digest[] = [root];
    for (let d = queue.pop(); d !== undefined; d = queue.pop()) {
      stopIfAborted();
      if (reachable.has(d.value)) continue;
      reachable.add(d.value);
      marked.add(d.value);
      const refs = await readManifest(name, d);
      for (const b of refs?.blobs ?? []) marked.add(b.value);
      for (const child of refs?.manifests ?? []) {
        marked.add(child.value);
        queue.push(child);
      }
      // OCI 1.1: a referrer (signature, SBOM) of a kept manifest is kept.
      for (const entry of await listDir(driver, paths.referrersDir(name, d))) {
        const referrer = digestOrUndefined(base(entry).replace('-', ':'));
        if (referrer !== undefined && revisions.has(referrer.value)) queue.push(referrer);
      }
    }
  };
  progress('mark', 0, repositories.length);
  let marking = 0;
  await forEachLimit(repositories, CONCURRENCY, async (name) => {
    const revisions = new Map<string, Digest>();
    for await (const d of digestDirs(driver, revisionsDir(name))) revisions.set(d.value, d);
    const revisionSet = new Set(revisions.keys());
    seenRevisions.set(name, revisionSet);
    const reachable = new Set<string>();
    if (!deleteUntagged) {
      for (const d of revisions.values()) await markFrom(name, d, revisionSet, reachable);
    } else {
      for (const tagDir of await listDir(driver, paths.tags(name))) {
        const tag = base(tagDir);
        let text: string;
        try {
          text = (await driver.getContent(paths.tagCurrent(name, tag))).toString('utf8').trim();
        } catch (err) {
          if (isNotFound(err)) continue;
          throw err;
        }
        const d = digestOrUndefined(text);
        if (d === undefined) problem(`${name}:${tag}: the tag link does not hold a digest`);
        else if (!revisions.has(d.value)) problem(`${name}:${tag}: the tag points to ${d.value}, not in ${name}`);
        else await markFrom(name, d, revisionSet, reachable);
      }
      // Untagged manifests newer than the grace period may be children of an index being pushed: kept.
      const untagged: Digest[] = [];
      for (const d of revisions.values()) {
        if (reachable.has(d.value)) continue;
        const info = await statOrUndefined(driver, paths.revisionLink(name, d));
        if (info === undefined) continue;
        if (young(info)) await markFrom(name, d, revisionSet, reachable);
        else untagged.push(d);
      }
      const candidates = untagged.filter((d) => !reachable.has(d.value));
      if (candidates.length > 0) sweepable.set(name, candidates);
    }
    manifestsKept += reachable.size;
    progress('mark', ++marking, repositories.length);
  });
  progress('mark', repositories.length, repositories.length, true);

  const perRepository = new Map<string, { manifests: number; links: number; blobs: number; bytes: number }>();
  const tally = (name: string) => {
    let entry = perRepository.get(name);
    if (entry === undefined) perRepository.set(name, (entry = { manifests: 0, links: 0, blobs: 0, bytes: 0 }));
    return entry;
  };

  // Untagged manifests (deleteUntagged): their revision link and referrers entry go; their bytes are blobs like any
  // other, swept below unless another repository keeps them.
  const sweptManifestSet = new Set<string>();
  const manifestTotal = [...sweepable.values()].reduce((n, l) => n + l.length, 0);
  let manifestsDone = 0;
  progress('manifests', 0, manifestTotal);
  await forEachLimit([...sweepable], CONCURRENCY, async ([name, candidates]) => {
    // Tags as they are now: one moved onto a candidate during the mark saves it.
    const tagged = new Set<string>();
    for (const tagDir of await listDir(driver, paths.tags(name))) {
      try {
        tagged.add((await driver.getContent(`${tagDir}/current/link`)).toString('utf8').trim());
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    for (const d of candidates) {
      stopIfAborted();
      manifestsDone++;
      const info = await statOrUndefined(driver, paths.revisionLink(name, d));
      if (info === undefined || young(info) || tagged.has(d.value)) {
        // Still there and kept after all: what it references stays too.
        if (info !== undefined) await markFrom(name, d, seenRevisions.get(name) ?? new Set(), new Set());
        continue;
      }
      if (!dryRun) {
        let subject: Digest | undefined;
        try {
          const json = JSON.parse((await driver.getContent(paths.blobData(d))).toString('utf8')) as {
            subject?: { digest?: unknown };
          };
          subject = digestOrUndefined(json.subject?.digest);
        } catch {
          subject = undefined;
        }
        try {
          if (subject !== undefined) await remove(driver, paths.referrer(name, subject, d));
          await remove(driver, paths.revisionDir(name, d));
        } finally {
          await invalidate(name, d);
        }
      }
      sweptManifestSet.add(`${name}@${d.value}`);
      tally(name).manifests++;
      progress('manifests', manifestsDone, manifestTotal);
    }
  });
  progress('manifests', manifestTotal, manifestTotal, true);

  // Blobs: every one not marked and older than the grace period is a candidate.
  const candidates = new Map<string, { digest: Digest; size: number; links: string[] }>();
  let blobsKept = 0;
  let blobsInGrace = 0;
  let scanned = 0;
  progress('blobs', 0, undefined);
  const prefixes: Array<{ alg: string; prefix: string }> = [];
  for (const alg of await listDir(driver, `${ROOT}/blobs`)) {
    for (const prefix of await listDir(driver, alg)) prefixes.push({ alg, prefix });
  }
  await forEachLimit(prefixes, CONCURRENCY, async ({ alg, prefix }) => {
    for (const dir of await listDir(driver, prefix)) {
      stopIfAborted();
      scanned++;
      const d = digestOrUndefined(`${base(alg)}:${base(dir)}`);
      if (d === undefined) continue;
      if (marked.has(d.value)) {
        blobsKept++;
      } else {
        const info = await statOrUndefined(driver, paths.blobData(d));
        if (info === undefined || info.isDir) continue;
        if (young(info)) blobsInGrace++;
        else candidates.set(d.value, { digest: d, size: info.size, links: [] });
      }
      if (scanned % 100 === 0) progress('blobs', scanned, undefined);
    }
  });
  progress('blobs', scanned, scanned, true);

  // Links to candidates: a young one (a push or mount in flight) saves the blob.
  const save = (digest: string): void => {
    if (candidates.delete(digest)) blobsInGrace++;
  };
  progress('links', 0, repositories.length);
  let linked = 0;
  await forEachLimit(repositories, CONCURRENCY, async (name) => {
    for await (const d of digestDirs(driver, layersDir(name))) {
      stopIfAborted();
      const candidate = candidates.get(d.value);
      if (candidate === undefined) continue;
      const info = await statOrUndefined(driver, paths.layerLink(name, d));
      if (unsure.has(name) || (info !== undefined && young(info))) save(d.value);
      else candidate.links.push(name);
    }
    progress('links', ++linked, repositories.length);
  });
  progress('links', repositories.length, repositories.length, true);

  // Manifests written since the mark, or pushed again after it (a swept untagged one): what they reference is kept.
  // Every revision the mark kept is in `marked`; any other is new, and is marked once read, so that the rescan
  // after the sweep reads only those written since this pass.
  const names = new Set(repositories);
  const rescan = async (
    phase: 'recheck' | 'rescan',
    found: (name: string, d: Digest, refs: ManifestRefs | undefined) => Promise<void>,
  ) => {
    const current: string[] = [];
    await repositoryNames(driver, REPOSITORIES, '', current);
    for (const name of current) {
      if (names.has(name)) continue;
      names.add(name);
      repositories.push(name);
    }
    progress(phase, 0, repositories.length);
    let done = 0;
    await forEachLimit([...repositories], CONCURRENCY, async (name) => {
      for await (const d of digestDirs(driver, revisionsDir(name))) {
        stopIfAborted();
        if (marked.has(d.value)) continue;
        marked.add(d.value);
        await found(name, d, await readManifest(name, d));
      }
      progress(phase, ++done, repositories.length);
    });
    progress(phase, repositories.length, repositories.length, true);
  };
  await rescan('recheck', async (name, d, refs) => {
    save(d.value);
    for (const b of [...(refs?.blobs ?? []), ...(refs?.manifests ?? [])]) save(b.value);
    if (refs === undefined) for (const c of [...candidates.values()]) if (c.links.includes(name)) save(c.digest.value);
  });

  // Sweep: for each candidate, re-checked just before, its links go and then its bytes move to the trash; the cache
  // hears of every one. A manifest PUT checks its blobs again after writing its revision (src/storage/manifests.ts),
  // so a push that raced this either fails cleanly (MANIFEST_BLOB_UNKNOWN) or wrote its revision before the check,
  // which the rescan below finds, and the trash gives back what it references.
  const trashed = new Map<string, { digest: Digest; size: number; links: string[] }>();
  let linksSwept = 0;
  const sweepTotal = candidates.size;
  let sweepDone = 0;
  progress('sweep', 0, sweepTotal);
  const ordered = [...candidates.values()].sort((a, b) => (a.digest.value < b.digest.value ? -1 : 1));
  const run = randomBytes(8).toString('hex');
  const journals: string[] = [];
  const sweepOne = async (candidate: { digest: Digest; size: number; links: string[] }): Promise<void> => {
    stopIfAborted();
    const { digest: d } = candidate;
    const blob = await statOrUndefined(driver, paths.blobData(d));
    if (blob === undefined || young(blob)) {
      if (blob !== undefined) blobsInGrace++;
      progress('sweep', ++sweepDone, sweepTotal);
      return;
    }
    const links: string[] = [];
    for (const name of candidate.links) {
      const link = await statOrUndefined(driver, paths.layerLink(name, d));
      if (link !== undefined && young(link)) {
        blobsInGrace++;
        progress('sweep', ++sweepDone, sweepTotal);
        return;
      }
      if (link !== undefined) links.push(name);
    }
    if (!dryRun) {
      for (const name of links) {
        try {
          await remove(driver, paths.layerLinkDir(name, d));
        } finally {
          await invalidate(name, d);
        }
      }
      try {
        await driver.move(paths.blobData(d), trashFile(d));
        await remove(driver, blobDir(d));
      } catch (err) {
        // Gone meanwhile (another collector): nothing of it to give back.
        if (!isNotFound(err)) throw err;
      } finally {
        // Undefined scope: the global entry and every repository's entry for the digest, in every tier.
        await invalidate(undefined, d);
      }
    }
    linksSwept += links.length;
    for (const name of links) tally(name).links++;
    trashed.set(d.value, { digest: d, size: blob.size, links });
    progress('sweep', ++sweepDone, sweepTotal);
  };
  for (let at = 0; at < ordered.length; at += JOURNAL_BATCH) {
    const batch = ordered.slice(at, at + JOURNAL_BATCH);
    if (!dryRun) {
      const journal = `${JOURNAL}/${run}-${String(journals.length).padStart(6, '0')}`;
      await driver.putContent(journal, Buffer.from(JSON.stringify(batch.map((c) => [c.digest.value, c.links]))));
      journals.push(journal);
    }
    await forEachLimit(batch, CONCURRENCY, sweepOne);
  }
  progress('sweep', sweepTotal, sweepTotal, true);

  // Rescan: a manifest written before its PUT's second check may reference what was just swept; it is given back.
  if (!dryRun && (trashed.size > 0 || sweptManifestSet.size > 0)) {
    // A tag written since the manifests went, onto one of them (a push of the same manifest again), brings its
    // revision back; the PUT that wrote it checks its revision after the tag, so it either fails cleanly or sees this.
    const sweptIn = new Set([...sweptManifestSet].map((key) => key.slice(0, key.lastIndexOf('@'))));
    for (const name of sweptIn) {
      for (const tagDir of await listDir(driver, paths.tags(name))) {
        let target: Digest | undefined;
        try {
          target = digestOrUndefined((await driver.getContent(`${tagDir}/current/link`)).toString('utf8').trim());
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        if (target === undefined || !sweptManifestSet.delete(`${name}@${target.value}`)) continue;
        tally(name).manifests--;
        marked.delete(target.value);
        await driver.putContent(paths.revisionLink(name, target), Buffer.from(target.value));
      }
    }
    await rescan('rescan', async (name, d, refs) => {
      for (const ref of [d, ...(refs?.blobs ?? []), ...(refs?.manifests ?? [])]) {
        const entry = trashed.get(ref.value);
        if (entry !== undefined) {
          trashed.delete(ref.value);
          linksSwept -= entry.links.length;
          for (const n of entry.links) tally(n).links--;
          await restoreFromTrash(driver, ref, [...entry.links, name]);
        }
      }
      // A swept untagged manifest of this repository that the new one references (an index's child) comes back too.
      for (const child of refs?.manifests ?? []) {
        const key = `${name}@${child.value}`;
        if (!sweptManifestSet.has(key)) continue;
        sweptManifestSet.delete(key);
        tally(name).manifests--;
        await driver.putContent(paths.revisionLink(name, child), Buffer.from(child.value));
      }
    });
  }

  // What no manifest took back is gone for good.
  const sweptBlobs: string[] = [];
  let bytesFreed = 0;
  await forEachLimit([...trashed.values()], CONCURRENCY, async ({ digest: d, size, links }) => {
    if (!dryRun) await remove(driver, trashFile(d));
    sweptBlobs.push(d.value);
    bytesFreed += size;
    for (const name of links.length === 0 ? [''] : links) {
      const entry = tally(name);
      entry.blobs++;
      entry.bytes += size;
    }
  });
  // The journals last: until the trash is empty, they are what puts it back after a crash.
  for (const journal of journals) await remove(driver, journal);
  const sweptManifestList = [...sweptManifestSet];

  // What writes cut short by a crash left behind (temporary files, unfinished multipart uploads), as old as the grace.
  progress('leftovers', 0, undefined);
  const leftoversSwept = (await driver.abortIncomplete?.(new Date(now() - graceMs), dryRun)) ?? 0;
  progress('leftovers', leftoversSwept, leftoversSwept, true);

  return {
    dryRun,
    deleteUntagged,
    repositories: repositories.length,
    manifestsKept,
    manifestsSwept: sweptManifestList.length,
    blobsKept,
    blobsInGrace,
    blobsSwept: sweptBlobs.length,
    bytesFreed,
    linksSwept,
    leftoversSwept,
    sweptBlobs: sweptBlobs.sort(),
    sweptManifests: sweptManifestList.sort(),
    perRepository: Object.fromEntries([...perRepository.entries()].sort(([a], [b]) => (a < b ? -1 : 1))),
    problems,
    durationMs: now() - started,
  };
}
