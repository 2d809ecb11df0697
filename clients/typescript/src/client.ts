import createClient, { type Client, type ClientPathsWithMethod, type FetchResponse, type MaybeOptionalInit } from "openapi-fetch";
import { throwOnError } from "./errors.js";
import type { paths } from "./schema.js";

type Method = "get" | "put" | "post" | "delete" | "patch";
type Operation<P extends keyof paths, M extends Method> = Extract<paths[P][M], Record<string | number, any>>;
type RequiredKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? never : K }[keyof T];
// The init argument of a call: optional when nothing in it is required.
type InitArg<I> = RequiredKeys<I> extends never ? [(I & { [key: string]: unknown })?] : [I & { [key: string]: unknown }];
// The answer of a call that resolved: errors reject (throwOnError), so
// `data` is there, except on a 304 (an operation that documents one,
// GET /me/avatar with If-None-Match), which resolves without it.
type Success<R> = Extract<R, { error?: never }>;
type Resolved<Op, R> = Op extends { responses: { 304: unknown } }
  ? Omit<Success<R>, "data"> & { data?: Success<R> extends { data: infer D } ? D : never }
  : Success<R>;
type ResolvedMethod<M extends Method> = <
  P extends ClientPathsWithMethod<Client<paths>, M>,
  I extends MaybeOptionalInit<paths[P], M>,
>(
  url: P,
  ...init: InitArg<I>
) => Promise<Resolved<paths[P][M], FetchResponse<Operation<P, M>, I, `${string}/${string}`>>>;

/**
 * The typed client of the Latchkey API: `client.GET("/me")` and so on.
 * Every error answer rejects with a `LatchkeyError`, so a resolved call
 * types `data` as present (`const { data: me } = await client.GET("/me")`
 * is a `User`), except where the operation documents a 304.
 */
export type ApiClient = Omit<Client<paths>, "GET" | "PUT" | "POST" | "DELETE" | "PATCH"> & {
  GET: ResolvedMethod<"get">;
  PUT: ResolvedMethod<"put">;
  POST: ResolvedMethod<"post">;
  DELETE: ResolvedMethod<"delete">;
  PATCH: ResolvedMethod<"patch">;
};

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
  return client as unknown as ApiClient;
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
