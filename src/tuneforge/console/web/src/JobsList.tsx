import { useEffect, useState } from "react";
import { apiClient, type Session, type TuningJob } from "./api/client";
import { duration, jobId, method, shortState } from "./jobs";

const POLL_MS = 3000;
const MAX_BACKOFF_MS = 60000;

// Tuning jobs of the session's project and location, refreshed while the page is open (with back-off on errors).
export function JobsList({ session }: { session: Session }) {
  const [jobs, setJobs] = useState<TuningJob[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const client = apiClient(session);
    let delay = POLL_MS;
    let timer: number | undefined;
    let stopped = false;
    async function poll() {
      const { data, error: failure, response } = await client.GET(
        "/v1/projects/{project}/locations/{location}/tuningJobs",
        { params: { path: { project: session.project, location: session.location } } },
      );
      if (stopped) return;
      if (data) {
        setJobs(data.tuningJobs ?? []);
        setError(null);
        delay = POLL_MS;
      } else {
        const message = (failure as { error?: { message?: string } } | undefined)?.error?.message;
        setError(`${response.status}: ${message ?? response.statusText}`);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
      setNow(Date.now());
      timer = window.setTimeout(poll, delay);
    }
    poll();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [session]);

  return (
    <section aria-labelledby="jobs-heading">
      <h2 id="jobs-heading">Tuning jobs</h2>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {jobs === null && !error && <p>Loading…</p>}
      {jobs && jobs.length === 0 && <p>No tuning jobs in this project and location yet.</p>}
      {jobs && jobs.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Base model</th>
                <th scope="col">Method</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((job) => (
                <tr key={job.name}>
                  <td>
                    <a className="name" href={`#/jobs/${jobId(job)}`}>
                      {job.tunedModelDisplayName || jobId(job)}
                    </a>
                    <span className="id">{jobId(job)}</span>
                  </td>
                  <td>{job.baseModel}</td>
                  <td>{method(job)}</td>
                  <td>
                    <span className={`badge ${shortState(job.state)}`}>{shortState(job.state)}</span>
                  </td>
                  <td>{job.createTime ? new Date(job.createTime).toLocaleString() : "–"}</td>
                  <td>{duration(job, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
