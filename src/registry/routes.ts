// The route table of the distribution API. Repository names contain slashes, so routes are RegExps on the raw
// (undecoded) path; a name never needs decoding because the name grammar has no characters that would be encoded.

export const RouteNames = {
  base: 'base',
  catalog: 'catalog',
  tags: 'tags',
  manifest: 'manifest',
  blob: 'blob',
  uploadStart: 'upload-start',
  upload: 'upload',
  referrers: 'referrers',
} as const;
export type RouteName = (typeof RouteNames)[keyof typeof RouteNames];

export interface RouteMatch {
  readonly route: RouteName;
  readonly name: string;
  /** The reference, digest or upload id, when the route has one. */
  readonly param: string;
}

const TABLE: ReadonlyArray<readonly [RegExp, RouteName]> = [
  [/^\/v2\/?$/, RouteNames.base],
  [/^\/v2\/_catalog\/?$/, RouteNames.catalog],
  [/^\/v2\/(.+)\/tags\/list\/?$/, RouteNames.tags],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, RouteNames.manifest],
  [/^\/v2\/(.+)\/blobs\/uploads\/?$/, RouteNames.uploadStart],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, RouteNames.upload],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, RouteNames.blob],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, RouteNames.referrers],
];

/** Matches a request path (without the configured prefix) against the table. */
export function matchRoute(path: string): RouteMatch | undefined {
  if (!path.startsWith('/v2')) return undefined;
  for (const [re, route] of TABLE) {
    const m = re.exec(path);
    if (m !== null) return { route, name: m[1] ?? '', param: m[2] ?? '' };
  }
  return undefined;
}

/** Methods each route answers (HEAD wherever GET is). */
export const ALLOWED_METHODS: Readonly<Record<RouteName, readonly string[]>> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET', 'HEAD'],
  tags: ['GET', 'HEAD'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  'upload-start': ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  referrers: ['GET', 'HEAD'],
};
