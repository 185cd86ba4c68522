import { useState, type FormEvent } from "react";
import { loadSession, saveSession, type Session } from "./api/client";
import { useLocations } from "./catalog";
import { kindOf } from "./kinds";
import { ComparePage } from "./pages/ComparePage";
import { CreatePage } from "./pages/CreatePage";
import { DatasetsPage } from "./pages/DatasetsPage";
import { JobsPage } from "./pages/JobsPage";
import { ModelsPage } from "./pages/ModelsPage";
import { PlaygroundPage } from "./pages/PlaygroundPage";
import { links, useRoute } from "./route";

const NAV: [string, string, string][] = [
  ["jobs", "Tuning jobs", links.jobs()],
  ["create", "Create", links.create()],
  ["datasets", "Datasets", links.datasets()],
  ["models", "Models & endpoints", links.models()],
  ["playground", "Playground", links.playground()],
];

// The console's frame: navigation, where it works (project, location) and the API key, kept in the browser session.
export function App() {
  const [session, setSession] = useState<Session>(loadSession);
  const route = useRoute();
  const locations = useLocations(session);
  const [section, ...rest] = route.path;

  function use(next: Session) {
    saveSession(next);
    setSession(next);
  }
  function apply(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    use({
      apiKey: String(form.get("apiKey") ?? ""),
      project: String(form.get("project") ?? "").trim() || session.project,
      location: String(form.get("location") ?? "").trim() || session.location,
    });
  }

  return (
    <>
      <header>
        <div className="brand">
          <h1>tuneforge</h1>
          <nav aria-label="Console">
            <ul>
              {NAV.map(([id, label, href]) => (
                <li key={id}>
                  <a href={href} aria-current={section === id ? "page" : undefined}>
                    {label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        </div>
        <form className="session" onSubmit={apply} aria-label="Session" key={`${session.project}/${session.location}`}>
          <label>
            Project <input name="project" defaultValue={session.project} autoComplete="off" />
          </label>
          <label>
            Location <input name="location" defaultValue={session.location} autoComplete="off" list="locations" />
          </label>
          <datalist id="locations">
            {locations.map((l) => (
              <option key={l.locationId} value={l.locationId} />
            ))}
          </datalist>
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
        <Page section={section} rest={rest} query={route.query} session={session} use={use} />
      </main>
    </>
  );
}

function Page({
  section,
  rest,
  query,
  session,
  use,
}: {
  section: string;
  rest: string[];
  query: URLSearchParams;
  session: Session;
  use: (s: Session) => void;
}) {
  switch (section) {
    case "jobs": {
      const kind = rest.length === 2 ? kindOf(rest[0]) : undefined;
      if (kind) return <kind.Details key={`${kind.id}/${rest[1]}`} session={session} id={rest[1]} />; // a new job, a new page state
      return <JobsPage session={session} />;
    }
    case "create":
      return <CreatePage session={session} flowId={rest[0]} onLocation={(location) => use({ ...session, location })} />;
    case "compare":
      return <ComparePage session={session} keys={(query.get("jobs") ?? "").split(",").filter(Boolean)} />;
    case "datasets":
      return <DatasetsPage session={session} />;
    case "models":
      return <ModelsPage session={session} />;
    case "playground":
      return <PlaygroundPage session={session} endpoint={query.get("endpoint") ?? ""} />;
    default:
      return <p className="error">No page {section}; use the navigation above.</p>;
  }
}
