// One tuning job: Monitor (progress, live charts of its real metrics), Details (the resolved configuration, dataset
// statistics, checkpoints), Events; Cancel, Deploy, Test.
import { useMemo, useRef, useState } from "react";
import { apiClient, ok, where, type JobEvent, type Schemas, type Session, type TuningJob } from "../api/client";
import { ErrorNote, ProgressBar, Scroll, StateBadge, Table } from "../components/bits";
import { ConfirmButton } from "../components/Confirm";
import { DataStats } from "../components/Histogram";
import { MetricsChart, type Series } from "../components/MetricsChart";
import { Tabs } from "../components/Tabs";
import { deployModel } from "../deploy";
import { ENDED, duration, number, seconds, shortState, when } from "../format";
import { usePolling } from "../hooks";
import { links } from "../route";
import { tuningRequest, tuningRow } from "./tuning";

const CHARTS: [string, string[]][] = [
  ["Loss", ["train_total_loss", "eval_total_loss"]],
  ["Next-token accuracy", ["train_fraction_of_correct_next_step_preds", "eval_fraction_of_correct_next_step_preds"]],
  ["Preference: reward accuracy", ["train_reward_accuracy", "eval_reward_accuracy"]],
  ["Preference: reward margin", ["train_reward_margin", "eval_reward_margin"]],
  ["Preference: rewards", ["train_chosen_reward", "train_rejected_reward"]],
];
const POLL_MS = 2000;

function pick(all: Series, names: string[]): Series {
  return Object.fromEntries(names.filter((n) => all[n]?.length).map((n) => [n, all[n]]));
}

type Progress = Schemas["Progress"];

interface Loaded {
  job: TuningJob;
  progress: Progress;
  events: JobEvent[];
}

/** Metrics as series, fetched incrementally: from one step before the last seen (an evaluation can land at a step
 * whose training metrics were already read), de-duplicated by name and step. */
function useSeries() {
  const seen = useRef(new Map<string, [number, number]>());
  const [series, setSeries] = useState<Series>({});
  function merge(metrics: { step: number; name: string; value: number }[]) {
    let changed = false;
    for (const m of metrics) {
      const key = `${m.name}@${m.step}`;
      if (!seen.current.has(key)) changed = true;
      seen.current.set(key, [m.step, m.value]);
    }
    if (!changed) return;
    const next: Series = {};
    for (const [key, point] of seen.current) (next[key.split("@")[0]] ??= []).push(point);
    for (const points of Object.values(next)) points.sort((a, b) => a[0] - b[0]);
    setSeries(next);
  }
  const last = () => Math.max(0, ...[...seen.current.values()].map((p) => p[0]));
  return { series, merge, since: () => Math.max(0, last() - 1) };
}

export function TuningJobDetails({ session, id }: { session: Session; id: string }) {
  const client = useMemo(() => apiClient(session), [session]);
  const { series, merge, since } = useSeries();
  const [tab, setTab] = useState("monitor");
  const path = { ...where(session), job_id: id };
  const polled = usePolling<Loaded>(
    async () => {
      const job = await ok(
        client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}", { params: { path } }),
      );
      const m = await ok(
        client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}/metrics", {
          params: { path, query: { sinceStep: since() } },
        }),
      );
      const ev = await ok(
        client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}/events", { params: { path } }),
      );
      merge(m.metrics ?? []);
      return { job, progress: m.progress, events: ev.events ?? [] };
    },
    [client, id],
    POLL_MS,
    (d) => ENDED.has(shortState(d.job.state)),
  );
  if (!polled.data) return polled.error ? <ErrorNote error={polled.error} /> : <p>Loading…</p>;
  const { job, progress, events } = polled.data;
  const row = tuningRow(job);
  const state = shortState(job.state);
  return (
    <section aria-labelledby="job-heading">
      <p>
        <a href={links.jobs()}>← Tuning jobs</a>
      </p>
      <h2 id="job-heading">{row.title}</h2>
      <p className="meta">
        <StateBadge state={job.state} /> {job.baseModel} · {row.method} · made with the tuningJobs API · created{" "}
        {when(job.createTime)} · {duration(job.startTime, job.endTime)}
      </p>
      <ErrorNote error={polled.error} />
      {job.error?.message && <p className="error">Error: {job.error.message}</p>}
      <Actions session={session} job={job} refresh={polled.refresh} />
      <Tabs
        label="Job views"
        current={tab}
        onChange={setTab}
        tabs={[
          { id: "monitor", label: "Monitor", panel: () => <Monitor job={job} progress={progress} series={series} /> },
          { id: "details", label: "Details", panel: () => <Details job={job} progress={progress} /> },
          { id: "events", label: `Events (${events.length})`, panel: () => <Events events={events} /> },
        ]}
      />
      {!ENDED.has(state) && <p className="muted">Refreshing while the job runs.</p>}
    </section>
  );
}

function Actions({ session, job, refresh }: { session: Session; job: TuningJob; refresh: () => void }) {
  const client = useMemo(() => apiClient(session), [session]);
  const [deployed, setDeployed] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const state = shortState(job.state);
  const model = job.tunedModel?.model;
  const endpoint = deployed ?? job.tunedModel?.endpoint;
  async function deploy() {
    if (!model) return;
    setBusy(true);
    setError(null);
    try {
      setDeployed(await deployModel(client, session, model, job.tunedModelDisplayName || "tuned-model"));
    } catch (e) {
      setError(String(e instanceof Error ? e.message : e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className="actions" aria-label="Job actions" role="group">
      {!ENDED.has(state) && state !== "cancelling" && (
        <ConfirmButton
          label="Cancel job"
          question={`Cancel ${job.tunedModelDisplayName}? A running job stops at its next step; nothing is exported.`}
          confirm="Cancel the job"
          danger
          onConfirm={async () => {
            await ok(
              client.POST("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}:cancel", {
                params: { path: { ...where(session), job_id: (job.name ?? "").split("/").pop() ?? "" } },
              }),
            );
            refresh();
          }}
        />
      )}
      {state === "succeeded" && model && (
        <button type="button" onClick={deploy} disabled={busy}>
          {busy ? "Deploying…" : endpoint ? "Deploy to a new endpoint" : "Deploy"}
        </button>
      )}
      {endpoint && (
        <a className="button" href={links.playground(endpoint)}>
          Test in the playground
        </a>
      )}
      {deployed && <span role="status">Deployed to {deployed}</span>}
      <ErrorNote error={error} />
    </div>
  );
}

function Monitor({ job, progress, series }: { job: TuningJob; progress: Progress; series: Series }) {
  const step = progress.step ?? 0;
  const total = progress.totalSteps;
  const perStep = progress.trainSeconds && step ? progress.trainSeconds / step : null;
  const running = shortState(job.state) === "running";
  return (
    <>
      <p className="meta">
        <ProgressBar step={step} total={total} label="Training progress" /> steps
        {progress.tokensPerSecond ? ` · ${number(progress.tokensPerSecond)} tokens/s` : ""}
        {running && perStep && total ? ` · about ${seconds((total - step) * perStep)} left` : ""}
      </p>
      <div className="charts">
        {CHARTS.filter(
          ([title, names]) => !title.startsWith("Preference") || Object.keys(pick(series, names)).length,
        ).map(([title, names]) => (
          <MetricsChart key={title} title={title} series={pick(series, names)} />
        ))}
      </div>
    </>
  );
}

function Details({ job, progress }: { job: TuningJob; progress: Progress }) {
  const plan = progress.plan ?? {};
  const request = tuningRequest(job);
  const checkpoints = job.tunedModel?.checkpoints ?? [];
  return (
    <>
      <h3>Resolved configuration</h3>
      {Object.keys(plan).length ? (
        <Scroll label="Resolved configuration">
          <table className="kv">
            <tbody>
              {Object.entries(plan).map(([k, v]) => (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  <td>{v === null ? "–" : String(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
      ) : (
        <p className="muted">Resolved when the run starts.</p>
      )}
      <details>
        <summary>The request</summary>
        <pre tabIndex={0}>{JSON.stringify(request, null, 2)}</pre>
      </details>
      <h3>Dataset statistics</h3>
      <DataStats stats={job.tuningDataStats as Record<string, unknown> | null} />
      <h3>Checkpoints</h3>
      {checkpoints.length ? (
        <Table label="Checkpoints" columns={["Checkpoint", "Epoch", "Step", "Endpoint"]}>
          {checkpoints.map((c) => (
            <tr key={c.checkpointId}>
              <td>{c.checkpointId}</td>
              <td>{c.epoch}</td>
              <td>{c.step}</td>
              <td className="uri">{c.endpoint ?? "–"}</td>
            </tr>
          ))}
        </Table>
      ) : (
        <p className="muted">The exported model is listed here when the job succeeds.</p>
      )}
      {job.tunedModel?.model && (
        <p>
          Registered model: <code>{job.tunedModel.model}</code>
        </p>
      )}
    </>
  );
}

export function Events({ events }: { events: JobEvent[] }) {
  if (!events.length) return <p className="muted">No events yet.</p>;
  return (
    <Table label="Events" columns={["Time", "Severity", "Event"]}>
      {events.map((e, i) => (
        <tr key={i} className={(e.severity ?? "INFO").toLowerCase()}>
          <td>{when(e.time)}</td>
          <td>{e.severity}</td>
          <td>{e.message}</td>
        </tr>
      ))}
    </Table>
  );
}
