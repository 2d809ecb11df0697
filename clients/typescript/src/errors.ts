import type { Middleware } from "openapi-fetch";
import type { components } from "./schema.js";

/** A stable, machine-readable error code of the API. */
export type ErrorCode = components["schemas"]["ErrorCode"];
/** A field that broke a rule, in an error's `details`. */
export type FieldError = components["schemas"]["FieldError"];
/** The body of every error answer of the API. */
export type ErrorBody = components["schemas"]["Error"];

/**
 * An error answer of the API (any status of 400 or more), with its stable
 * `code`. Network failures are not wrapped: they reject with fetch's own
 * error.
 */
export class LatchkeyError extends Error {
  override readonly name = "LatchkeyError";
  /** The stable, machine-readable code: branch on this, not on `message`. */
  readonly code: ErrorCode;
  /** The HTTP status. */
  readonly status: number;
  /** The fields that broke a rule, when validation failed; else empty. */
  readonly details: FieldError[];
  /** Seconds to wait before trying again (429 and 503), when the server said. */
  readonly retryAfter: number | undefined;

  constructor(status: number, body: ErrorBody, retryAfter?: number) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.details = body.details ?? [];
    this.retryAfter = retryAfter;
  }

  /**
   * Reads an error response. A body that is not the API's `Error` (say, a
   * proxy's HTML page) gets the code the API uses for that status.
   */
  static async fromResponse(response: Response): Promise<LatchkeyError> {
    const text = await response.text();
    let body: ErrorBody | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (isErrorBody(parsed)) body = parsed;
    } catch {
      // Not JSON: fall back below.
    }
    body ??= { code: codeForStatus(response.status), message: `HTTP ${response.status} ${response.statusText}`.trim() };
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    return new LatchkeyError(response.status, body, Number.isNaN(retryAfter) ? undefined : retryAfter);
  }
}

function isErrorBody(v: unknown): v is ErrorBody {
  return typeof v === "object" && v !== null && typeof (v as ErrorBody).code === "string" && typeof (v as ErrorBody).message === "string";
}

const statusCodes: Partial<Record<number, ErrorCode>> = {
  400: "INVALID_REQUEST",
  401: "UNAUTHENTICATED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "RATE_LIMITED",
  502: "UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "UNAVAILABLE",
};

function codeForStatus(status: number): ErrorCode {
  return statusCodes[status] ?? (status < 500 ? "INVALID_REQUEST" : "INTERNAL");
}

/**
 * Client middleware that turns every answer of status 400 or more into a
 * rejected call with a {@link LatchkeyError}, so that a resolved call always
 * carries its `data`.
 */
export const throwOnError: Middleware = {
  async onResponse({ response }) {
    if (response.status >= 400) throw await LatchkeyError.fromResponse(response);
    return undefined;
  },
};
