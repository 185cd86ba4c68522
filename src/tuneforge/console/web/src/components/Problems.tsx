// A dataset's validation report: every error and warning with its file, line and JSON path.
import type { ReportProblem } from "../api/client";
import { Table } from "./bits";

export function Problems({ problems, title = "Dataset report" }: { problems: ReportProblem[]; title?: string }) {
  if (!problems.length) return null;
  const errors = problems.filter((p) => p.severity === "error").length;
  return (
    <section className="problems" aria-label={title}>
      <h3>
        {title}: {errors} error(s), {problems.length - errors} warning(s)
      </h3>
      <Table label={`${title}: every problem`} columns={["Severity", "File", "Line", "Field", "Problem and fix"]}>
        {problems.map((p, i) => (
          <tr key={i} className={p.severity}>
            <td>{p.severity}</td>
            <td className="uri">{p.source ?? "–"}</td>
            <td>{p.line ?? "–"}</td>
            <td>
              <code>{p.path ?? "–"}</code>
            </td>
            <td>{p.message}</td>
          </tr>
        ))}
      </Table>
    </section>
  );
}
