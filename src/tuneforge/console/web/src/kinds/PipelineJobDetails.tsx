// One pipeline job: its tasks in order with states, times and outputs; its parameters; its events; Cancel and Test.
import { useMemo, useState } from "react";
import { apiClient, ok, where, type JobEvent, type PipelineJob, type Session } from "../api/client";
import { ErrorNote, Scroll, StateBadge, Table } from "../components/bits";
import { ConfirmButton } from "../components/Confirm";
import { Tabs } from "../components/Tabs";
import { ENDED, duration, shortState, when } from "../format";
import { usePolling } from "../hooks";
import { links } from "../route";
import { parameters, PIPELINES, template, type Task } from "./pipeline";
import { Events } from "./TuningJobDetails";

function outputs(task: Task): [string, unknown][] {
  return Object.entries(task.execution?.metadata ?? {})
    .filter(([k]) => k.startsWith("output:"))
    .map(([k, v]) => [k.slice("output:".length), v]);
}

export function PipelineJobDetails({ session, id }: { session: Session; id: string }) {
  const client = useMemo(() => apiClient(session), [session]);
  const [tab, setTab] = useState("tasks");
  const path = { ...where(session), job_id: id };
  const polled = usePolling<{ job: PipelineJob; events: JobEvent[] }>(
    async () => {
      const job = await ok(
        client.GET("/v1/projects/{project}/locations/{location}/pipelineJobs/{job_id}", { params: { path } }),
      );
      const ev = await ok(
        client.GET("/v1/projects/{project}/locations/{location}/pipelineJobs/{job_id}/events", { params: { path } }),
      );
      return { job, events: ev.events ?? [] };
    },
    [client, id],
    2000,
    (d) => ENDED.has(shortState(d.job.state)),
  );
  if (!polled.data) return polled.error ? <ErrorNote error={polled.error} /> : <p>Loading…</p>;
  const { job, events } = polled.data;
  const tasks = job.jobDetail?.taskDetails ?? [];
  const kind = template(job);
  const params = parameters(job);
  const state = shortState(job.state);
  const endpoint = tasks.flatMap(outputs).find(([k]) => k === "endpoint")?.[1] as string | undefined;
  return (
    <section aria-labelledby="job-heading">
      <p>
        <a href={links.jobs()}>← Tuning jobs</a>
      </p>
      <h2 id="job-heading">{job.displayName || id}</h2>
      <p className="meta">
        <StateBadge state={job.state} /> {PIPELINES[kind] ?? kind} pipeline ·{" "}
        {String(params.large_model_reference ?? params.student_model_reference ?? "")} · made with the pipelineJobs API
        · created {when(job.createTime)} · {duration(job.startTime, job.endTime)}
      </p>
      <ErrorNote error={polled.error} />
      {job.error?.message && <p className="error">Error: {job.error.message}</p>}
      <div className="actions" role="group" aria-label="Job actions">
        {!ENDED.has(state) && state !== "cancelling" && (
          <ConfirmButton
            label="Cancel job"
            question={`Cancel ${job.displayName || id}? The running task stops; the tasks after it do not run.`}
            confirm="Cancel the job"
            danger
            onConfirm={async () => {
              await ok(
                client.POST("/v1/projects/{project}/locations/{location}/pipelineJobs/{job_id}:cancel", {
                  params: { path },
                }),
              );
              polled.refresh();
            }}
          />
        )}
        {endpoint && (
          <a className="button" href={links.playground(endpoint)}>
            Test in the playground
          </a>
        )}
      </div>
      <Tabs
        label="Job views"
        current={tab}
        onChange={setTab}
        tabs={[
          { id: "tasks", label: "Tasks", panel: () => <Tasks tasks={tasks} /> },
          { id: "parameters", label: "Parameters", panel: () => <Parameters params={params} /> },
          { id: "events", label: `Events (${events.length})`, panel: () => <Events events={events} /> },
        ]}
      />
    </section>
  );
}

function Tasks({ tasks }: { tasks: Task[] }) {
  return (
    <Table label="Tasks in order" columns={["#", "Task", "State", "Started", "Duration", "Outputs"]}>
      {tasks.map((t) => (
        <tr key={t.taskId ?? t.taskName}>
          <td>{t.taskId}</td>
          <td>{t.taskName}</td>
          <td>
            <StateBadge state={t.state} />
          </td>
          <td>{when(t.startTime)}</td>
          <td>{duration(t.startTime, t.endTime)}</td>
          <td>
            {t.error?.message && <p className="error">{t.error.message}</p>}
            <dl className="outputs">
              {outputs(t).map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd>{typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>
                </div>
              ))}
            </dl>
          </td>
        </tr>
      ))}
    </Table>
  );
}

function Parameters({ params }: { params: Record<string, unknown> }) {
  return (
    <Scroll label="Parameters">
      <table className="kv">
        <tbody>
          {Object.entries(params).map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td>{String(v)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}
