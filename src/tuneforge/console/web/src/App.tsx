import { useState, type FormEvent } from "react";
import { loadSession, saveSession, type Session } from "./api/client";
import { JobsList } from "./JobsList";

// The console's frame: where it works (project, location) and the API key, kept in the browser session only.
export function App() {
  const [session, setSession] = useState<Session>(loadSession);

  function apply(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const next = {
      apiKey: String(form.get("apiKey") ?? ""),
      project: String(form.get("project") ?? "").trim() || session.project,
      location: String(form.get("location") ?? "").trim() || session.location,
    };
    saveSession(next);
    setSession(next);
  }

  return (
    <>
      <header>
        <h1>tuneforge</h1>
        <form className="session" onSubmit={apply} aria-label="Session">
          <label>
            Project <input name="project" defaultValue={session.project} autoComplete="off" />
          </label>
          <label>
            Location <input name="location" defaultValue={session.location} autoComplete="off" />
          </label>
          <label>
            API key <input name="apiKey" type="password" defaultValue={session.apiKey} autoComplete="off" />
          </label>
          <button type="submit">Switch</button>
        </form>
      </header>
      <main>
        <p className="where">
          Working in <strong>{session.project}</strong> / <strong>{session.location}</strong>
        </p>
        <JobsList session={session} />
      </main>
    </>
  );
}
