import createClient, { type Client } from "openapi-fetch";
import { throwOnError } from "./errors.js";
import type { paths } from "./schema.js";

/** The typed client of the Latchkey API: `client.GET("/me")` and so on. */
export type ApiClient = Client<paths>;

/** Options of {@link createApiClient} and `createLatchkey`. */
export interface ApiClientOptions {
  /**
   * The API's base URL, `/api` included: `https://id.example.com/api`.
   * Defaults to `/api` (the same origin, in a browser).
   */
  baseUrl?: string;
  /** The fetch to use (defaults to `globalThis.fetch`). */
  fetch?: (input: Request) => Promise<Response>;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

/**
 * Creates a typed client without a session: pass credentials yourself
 * (`headers: { Authorization: … }`). Every error answer rejects the call
 * with a `LatchkeyError`.
 */
export function createApiClient(options: ApiClientOptions = {}): ApiClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl ?? "/api",
    headers: options.headers,
    bodySerializer: serializeBody,
    ...(options.fetch && { fetch: options.fetch }),
  });
  client.use(throwOnError);
  return client;
}

// serializeBody sends a Blob (an avatar upload) and FormData as they are, a
// body whose Content-Type is a form as a form, and anything else as JSON.
function serializeBody(body: unknown, headers?: Headers): BodyInit {
  if (body instanceof Blob || body instanceof FormData) return body;
  if (headers?.get("Content-Type") === "application/x-www-form-urlencoded") {
    return new URLSearchParams(body as Record<string, string>).toString();
  }
  return JSON.stringify(body);
}
