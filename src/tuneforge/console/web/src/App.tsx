import { useEffect, useState, type FormEvent } from "react";
import { loadSession, saveSession, type Session } from "./api/client";
import { JobDetails } from "./JobDetails";
import { JobsList } from "./JobsList";

// The console's own routes live in the URL's fragment: #/ (the jobs list), #/jobs/<id> (a job).
function useRoute(): string {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return hash.replace(/^#/, "") || "/";
}

// The console's frame: where it works (project, location) and the API key, kept in the browser session only.
export function App() {
  const [session, setSession] = useState<Session>(loadSession);
  const route = useRoute();
  const job = /^\/jobs\/([^/]+)$/.exec(route)?.[1];

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
        {job ? <JobDetails session={session} id={job} /> : <JobsList session={session} />}
      </main>
    </>
  );
}
