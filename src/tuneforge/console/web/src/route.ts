// The console's own routes live in the URL's fragment (#/jobs, #/jobs/tuning/<id>, #/create/<flow>, …), so the server
// serves one page for all of them and a reload keeps the view.
import { useEffect, useState } from "react";

export interface Route {
  path: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const [path, query = ""] = (hash.replace(/^#/, "") || "/jobs").split("?");
  return { path: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

export function useRoute(): Route {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return parseHash(hash);
}

export function go(href: string): void {
  window.location.hash = href.replace(/^#/, "");
}

export const links = {
  jobs: () => "#/jobs",
  job: (kind: string, id: string) => `#/jobs/${kind}/${encodeURIComponent(id)}`,
  create: (flow?: string) => (flow ? `#/create/${flow}` : "#/create"),
  compare: (keys: string[]) => `#/compare?jobs=${keys.map(encodeURIComponent).join(",")}`,
  datasets: () => "#/datasets",
  models: () => "#/models",
  playground: (endpoint?: string) =>
    endpoint ? `#/playground?endpoint=${encodeURIComponent(endpoint)}` : "#/playground",
};
