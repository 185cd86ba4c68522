import { useEffect, useState } from "react";
import { apiClient, type Session, type TuningJob } from "./api/client";
import { jobId, method, shortState } from "./jobs";
import { MetricsChart, type Series } from "./MetricsChart";

const POLL_MS = 2000;
const ENDED = new Set(["succeeded", "failed", "cancelled"]);
const LOSSES = ["train_total_loss", "eval_total_loss"];
const ACCURACY = ["train_fraction_of_correct_next_step_preds", "eval_fraction_of_correct_next_step_preds"];

type Progress = { step?: number; totalSteps?: number | null; tokensPerSecond?: number | null };

function pick(all: Series, names: string[]): Series {
  return Object.fromEntries(names.filter((n) => all[n]?.length).map((n) => [n, all[n]]));
}

// One tuning job: its state and progress, live loss and accuracy charts from its metrics, its configuration.
export function JobDetails({ session, id }: { session: Session; id: string }) {
  const [job, setJob] = useState<TuningJob | null>(null);
  const [series, setSeries] = useState<Series>({});
  const [progress, setProgress] = useState<Progress>({});
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const client = apiClient(session);
    const path = { project: session.project, location: session.location, job_id: id };
    let since = 0;
    let timer: number | undefined;
    let stopped = false;
    async function poll() {
      const got = await client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}", {
        params: { path },
      });
      const m = await client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}/metrics", {
        params: { path, query: { sinceStep: since } },
      });
      if (stopped) return;
      if (!got.data || !m.data) {
        setError(`${got.response.status}: could not read the job`);
      } else {
        setError(null);
        setJob(got.data);
        setProgress(m.data.progress ?? {});
        const fresh = m.data.metrics ?? [];
        since = Math.max(since, ...fresh.map((x) => x.step));
        setSeries((old) => {
          const next: Series = { ...old };
          for (const x of fresh) next[x.name] = [...(next[x.name] ?? []), [x.step, x.value]];
          return next;
        });
        if (ENDED.has(shortState(got.data.state))) return;
      }
      timer = window.setTimeout(poll, POLL_MS);
    }
    poll();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [session, id]);

  if (error) return <p role="alert" className="error">{error}</p>;
  if (!job) return <p>Loading…</p>;
  const state = shortState(job.state);
  return (
    <section aria-labelledby="job-heading">
      <p>
        <a href="#/">← Tuning jobs</a>
      </p>
      <h2 id="job-heading">{job.tunedModelDisplayName || jobId(job)}</h2>
      <p>
        <span className={`badge ${state}`}>{state}</span> {job.baseModel} · {method(job)} · step{" "}
        {progress.step ?? 0}
        {progress.totalSteps ? ` of ${progress.totalSteps}` : ""}
      </p>
      {job.error?.message && <p className="error">{job.error.message}</p>}
      <div className="charts">
        <MetricsChart title="Loss" series={pick(series, LOSSES)} />
        <MetricsChart title="Next-token accuracy" series={pick(series, ACCURACY)} />
      </div>
      <details>
        <summary>Configuration</summary>
        <pre>{JSON.stringify(job, null, 2)}</pre>
      </details>
    </section>
  );
}
