// The one table of registry error codes (OCI distribution-spec v1.1 plus the few Distribution adds),
// and the typed error every layer throws. The HTTP boundary renders it as the OCI error envelope.

export const ErrorCodes = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'invalid tag' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

export interface RegistryErrorOptions {
  /** Overrides the code's default message. */
  readonly message?: string;
  /** Structured detail rendered in the envelope (for example the digest that is unknown). */
  readonly detail?: unknown;
  /** Overrides the code's default HTTP status (413 for an oversized manifest, 416 for a bad range). */
  readonly status?: number;
  /** Extra response headers (Range on a 416, for example). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A failure the client caused or must know about; carries everything needed to render it. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, options: RegistryErrorOptions = {}) {
    super(options.message ?? ErrorCodes[code].message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status ?? ErrorCodes[code].status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }
}

export interface ErrorEnvelope {
  readonly errors: ReadonlyArray<{ readonly code: ErrorCode; readonly message: string; readonly detail?: unknown }>;
}

/** The OCI error envelope for one error. */
export function envelope(err: RegistryError): ErrorEnvelope {
  const entry =
    err.detail === undefined
      ? { code: err.code, message: err.message }
      : { code: err.code, message: err.message, detail: err.detail };
  return { errors: [entry] };
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}
