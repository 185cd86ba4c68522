// Every job of the project and location, newest first across kinds (tuningJobs, pipelineJobs): filters by state,
// base model and kind, paging, live refresh with back-off, and a selection to compare.
import { useMemo, useState, type FormEvent } from "react";
import { apiClient, type Session } from "../api/client";
import { ErrorNote, ProgressBar, StateBadge, Table } from "../components/bits";
import { duration, seconds, shortState, when } from "../format";
import { usePolling } from "../hooks";
import { KINDS } from "../kinds";
import type { JobKind, JobRow, ListQuery } from "../kinds/types";
import { go, links } from "../route";

const PAGE = 20;
const POLL_MS = 3000;

type Cursor = Record<string, { token?: string; skip: number; done: boolean }>;
interface Filters {
  state: string;
  model: string;
  kind: string; // "", a kind's id, or "kind:method"
}

/** The kinds a filter asks for, each with its own query (a kind whose jobs cannot be in the state is left out). */
function wanted(filters: Filters): { kind: JobKind; query: ListQuery }[] {
  const [kindId, method] = filters.kind.split(":");
  return KINDS.filter((k) => (!kindId || k.id === kindId) && (!filters.state || k.states.includes(filters.state))).map(
    (kind) => ({ kind, query: { state: filters.state || undefined, model: filters.model || undefined, method } }),
  );
}

/** One page merged from every kind, newest first. Each kind's cursor is its page token plus how many rows of that
 * page were already shown, so the next page starts exactly after the last row shown, whatever the mix. */
async function mergedPage(session: Session, filters: Filters, cursor: Cursor) {
  const client = apiClient(session);
  const parts = await Promise.all(
    wanted(filters).map(async ({ kind, query }) => {
      const at = cursor[kind.id] ?? { skip: 0, done: false };
      if (at.done) return { kind, at, rows: [] as JobRow[], next: undefined };
      const page = await kind.list(client, session, query, PAGE + at.skip, at.token);
      return { kind, at, rows: page.rows.slice(at.skip), next: page.next };
    }),
  );
  const rows = parts
    .flatMap((p) => p.rows)
    .sort((a, b) => (b.createTime ?? "").localeCompare(a.createTime ?? ""))
    .slice(0, PAGE);
  const next: Cursor = {};
  for (const p of parts) {
    const taken = rows.filter((r) => r.kind === p.kind.id).length;
    next[p.kind.id] =
      taken === p.rows.length
        ? { token: p.next, skip: 0, done: p.at.done || !p.next }
        : { token: p.at.token, skip: p.at.skip + taken, done: false };
  }
  return { rows, next, more: Object.values(next).some((c) => !c.done) };
}

function eta(row: JobRow, now: number): string {
  if (shortState(row.state) !== "running" || !row.totalSteps || !row.step) return "";
  const perStep = row.secondsPerStep ?? (row.startTime ? (now - Date.parse(row.startTime)) / 1000 / row.step : null);
  return perStep ? ` · about ${seconds((row.totalSteps - row.step) * perStep)} left` : "";
}

export function JobsPage({ session }: { session: Session }) {
  const [filters, setFilters] = useState<Filters>({ state: "", model: "", kind: "" });
  const [pages, setPages] = useState<Cursor[]>([{}]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const cursor = pages[pages.length - 1];
  const polled = usePolling(() => mergedPage(session, filters, cursor), [session, filters, cursor], POLL_MS);
  const now = Date.now();
  const states = useMemo(() => [...new Set(KINDS.flatMap((k) => k.states))], []);

  function apply(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setFilters({
      state: String(form.get("state")),
      model: String(form.get("model")).trim(),
      kind: String(form.get("kind")),
    });
    setPages([{}]);
  }
  function toggle(key: string) {
    const next = new Set(selected);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    setSelected(next);
  }
  const rows = polled.data?.rows;
  const compareWhy = selected.size < 2 ? "Select two or more tuning jobs to compare them" : "";
  return (
    <section aria-labelledby="jobs-heading">
      <div className="heading-row">
        <h2 id="jobs-heading">Tuning jobs</h2>
        <a className="button primary" href={links.create()}>
          Create tuned model
        </a>
      </div>
      <form className="filters" onSubmit={apply} aria-label="Filter jobs">
        <label>
          State
          <select name="state" defaultValue={filters.state}>
            <option value="">All states</option>
            {states.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Base model
          <input name="model" defaultValue={filters.model} placeholder="any model" autoComplete="off" />
        </label>
        <label>
          Kind
          <select name="kind" defaultValue={filters.kind}>
            <option value="">All kinds</option>
            {KINDS.map((k) => (
              <optgroup key={k.id} label={k.label}>
                <option value={k.id}>All {k.label.toLowerCase()}</option>
                {k.methods.map((m) => (
                  <option key={m.id} value={`${k.id}:${m.id}`}>
                    {m.label}
                  </option>
                ))}
              </optgroup>
            ))}
          </select>
        </label>
        <button type="submit">Apply filters</button>
      </form>
      <ErrorNote error={polled.error} />
      {!rows && !polled.error && <p>Loading…</p>}
      {rows && rows.length === 0 && <p>No jobs match in this project and location yet.</p>}
      {rows && rows.length > 0 && (
        <Table
          label="Jobs"
          className="jobs"
          columns={["Compare", "Name", "Base model", "Method", "API", "State", "Created", "Duration", "Progress"]}
        >
          {rows.map((row) => {
            const key = `${row.kind}:${row.id}`;
            return (
              <tr key={key}>
                <td>
                  {row.comparable && (
                    <input
                      type="checkbox"
                      checked={selected.has(key)}
                      onChange={() => toggle(key)}
                      aria-label={`Compare ${row.title}`}
                    />
                  )}
                </td>
                <td>
                  <a className="name" href={links.job(row.kind, row.id)}>
                    {row.title}
                  </a>
                  <span className="id">{row.id}</span>
                </td>
                <td>{row.baseModel}</td>
                <td>{row.method}</td>
                <td>{row.api}</td>
                <td>
                  <StateBadge state={row.state} />
                </td>
                <td>{when(row.createTime)}</td>
                <td>{duration(row.startTime, row.endTime, now)}</td>
                <td>
                  {row.totalSteps ? (
                    <>
                      <ProgressBar step={row.step ?? 0} total={row.totalSteps} label={`Progress of ${row.title}`} />
                      {eta(row, now)}
                    </>
                  ) : (
                    "–"
                  )}
                </td>
              </tr>
            );
          })}
        </Table>
      )}
      <div className="pager" role="group" aria-label="Pages and compare">
        <button type="button" onClick={() => setPages(pages.slice(0, -1))} disabled={pages.length === 1}>
          Previous page
        </button>
        <span>Page {pages.length}</span>
        <button
          type="button"
          onClick={() => polled.data && setPages([...pages, polled.data.next])}
          disabled={!polled.data?.more}
        >
          Next page
        </button>
        <button type="button" onClick={() => go(links.compare([...selected]))} disabled={!!compareWhy}>
          Compare selected ({selected.size})
        </button>
        {compareWhy && <span className="muted">{compareWhy}</span>}
      </div>
    </section>
  );
}
