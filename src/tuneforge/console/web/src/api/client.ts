// The typed API client: `paths` is generated from the server's OpenAPI document at build time (npm run gen), so a
// change to the API that the console does not follow fails the console's build.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type TuningJob = components["schemas"]["TuningJob"];

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
