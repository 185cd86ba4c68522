// The typed API client: `paths` is generated from the server's OpenAPI document at build time (npm run gen), so a
// change to the API that the console does not follow fails the console's build.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type TuningJob = Schemas["TuningJob"];
export type PipelineJob = Schemas["PipelineJob"];
export type JobPreview = Schemas["JobPreview"];
export type BaseModelInfo = Schemas["BaseModelInfo"];
export type DatasetFile = Schemas["DatasetFile"];
export type ReportProblem = Schemas["ReportProblem"];
export type Model = Schemas["Model"];
export type Endpoint = Schemas["Endpoint"];
export type Operation = Schemas["Operation"];
export type JobEvent = Schemas["JobEvent"];
export type Content = Schemas["Content"];
export type Location = Schemas["Location"];

export interface Session {
  apiKey: string;
  project: string;
  location: string;
}

const STORE = "tuneforge.session"; // the browser session only: gone when the tab closes

export function loadSession(): Session {
  const saved = sessionStorage.getItem(STORE);
  const fallback = { apiKey: "", project: "tuneforge-demo", location: "us-central1" };
  return saved ? { ...fallback, ...(JSON.parse(saved) as Partial<Session>) } : fallback;
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(STORE, JSON.stringify(session));
}

export function apiClient(session: Session) {
  const client = createClient<paths>({ baseUrl: window.location.origin });
  const auth: Middleware = {
    onRequest({ request }) {
      if (session.apiKey) request.headers.set("Authorization", `Bearer ${session.apiKey}`);
      return request;
    },
  };
  client.use(auth);
  return client;
}

export type Client = ReturnType<typeof apiClient>;

/** The path parameters every project-scoped route takes. */
export function where(session: Session) {
  return { project: session.project, location: session.location };
}

/** A failed call: the HTTP status and the server's google.rpc.Status message (it names the field and the fix). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(`${status}: ${message}`);
  }
}

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The answer's data, or an ApiError with the server's own message. */
export async function ok<T>(call: Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok && data !== undefined) return data;
  const message = (error as { error?: { message?: string } } | undefined)?.error?.message;
  throw new ApiError(response.status, message ?? response.statusText);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The last segment of a resource name (projects/…/tuningJobs/123 -> 123). */
export function lastId(name: string | null | undefined): string {
  return (name ?? "").split("/").pop()?.replace(/@\d+$/, "") ?? "";
}
