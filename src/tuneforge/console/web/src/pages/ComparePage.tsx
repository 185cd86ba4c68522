// Two or more jobs: their loss curves overlaid, their configurations side by side with the differences marked.
import { useMemo } from "react";
import { apiClient, type Session } from "../api/client";
import { ErrorNote, Table } from "../components/bits";
import { MetricsChart, type Series } from "../components/MetricsChart";
import { usePolling } from "../hooks";
import { kindOf } from "../kinds";
import type { Comparison } from "../kinds/types";
import { links } from "../route";

const OVERLAYS: [string, string][] = [
  ["Training loss", "train_total_loss"],
  ["Validation loss", "eval_total_loss"],
  ["Next-token accuracy (training)", "train_fraction_of_correct_next_step_preds"],
];

export function ComparePage({ session, keys }: { session: Session; keys: string[] }) {
  const client = useMemo(() => apiClient(session), [session]);
  const polled = usePolling<Comparison[]>(
    () =>
      Promise.all(
        keys.map((key) => {
          const [kindId, id] = key.split(":");
          const kind = kindOf(kindId);
          if (!kind?.comparison) throw new Error(`${key}: jobs of this kind have no metric series to compare`);
          return kind.comparison(client, session, id);
        }),
      ),
    [client, keys.join(",")],
    5000,
  );
  const jobs = polled.data;
  return (
    <section aria-labelledby="compare-heading">
      <p>
        <a href={links.jobs()}>← Tuning jobs</a>
      </p>
      <h2 id="compare-heading">Compare {keys.length} jobs</h2>
      {keys.length < 2 && <p className="error">Select two or more jobs in the jobs list to compare them.</p>}
      <ErrorNote error={polled.error} />
      {!jobs && !polled.error && <p>Loading…</p>}
      {jobs && (
        <>
          <div className="charts">
            {OVERLAYS.map(([title, metric]) => {
              const series: Series = Object.fromEntries(
                jobs.filter((j) => j.series[metric]?.length).map((j, i) => [`${i + 1}. ${j.title}`, j.series[metric]]),
              );
              return Object.keys(series).length ? <MetricsChart key={title} title={title} series={series} /> : null;
            })}
          </div>
          <ConfigTable jobs={jobs} />
        </>
      )}
    </section>
  );
}

function ConfigTable({ jobs }: { jobs: Comparison[] }) {
  const keys = [...new Set(jobs.flatMap((j) => Object.keys(j.config)))].sort();
  const differs = (key: string) => new Set(jobs.map((j) => j.config[key] ?? "")).size > 1;
  const count = keys.filter(differs).length;
  return (
    <>
      <h3>Configurations</h3>
      <p>
        {count} of {keys.length} settings differ (marked ≠).
      </p>
      <Table
        label="Configurations side by side"
        className="compare"
        columns={["Setting", ...jobs.map((j, i) => `${i + 1}. ${j.title}`)]}
      >
        {keys.map((key) => (
          <tr key={key} className={differs(key) ? "differs" : undefined}>
            <th scope="row">
              {differs(key) && <span aria-label="differs">≠ </span>}
              {key}
            </th>
            {jobs.map((j, i) => (
              <td key={i}>{j.config[key] ?? "–"}</td>
            ))}
          </tr>
        ))}
      </Table>
    </>
  );
}
