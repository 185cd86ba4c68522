// Dataset files: uploaded here or named by a job; their format, counts and validation report; an upload form.
import { useMemo, useState, type FormEvent } from "react";
import {
  apiClient,
  errorText,
  lastId,
  ok,
  where,
  type DatasetFile,
  type ReportProblem,
  type Session,
} from "../api/client";
import { ErrorNote, Table } from "../components/bits";
import { Problems } from "../components/Problems";
import { useBaseModels } from "../catalog";
import { PURPOSES, uploadDataset } from "../datasets";
import { FileAndLocation } from "../forms/FileAndLocation";
import { bytes, number, when } from "../format";
import { usePolling } from "../hooks";
import { links } from "../route";

export function DatasetsPage({ session }: { session: Session }) {
  const client = useMemo(() => apiClient(session), [session]);
  const polled = usePolling(
    () =>
      ok(
        client.GET("/v1/projects/{project}/locations/{location}/tuneforge/datasets", {
          params: { path: where(session) },
        }),
      ),
    [client],
    0,
  );
  const [report, setReport] = useState<{ uri: string; problems: ReportProblem[]; against?: string | null } | null>(
    null,
  );
  const [reportError, setReportError] = useState<string | null>(null);
  const [model, setModel] = useState("");
  const { models } = useBaseModels(session);

  async function inspect(file: DatasetFile) {
    setReportError(null);
    try {
      const answer = await ok(
        client.POST("/v1/projects/{project}/locations/{location}/tuneforge/datasets:inspect", {
          params: { path: where(session) },
          body: { uri: file.uri, purpose: file.purpose, baseModel: model || null },
        }),
      );
      setReport({ uri: file.uri, problems: answer.problems ?? [], against: answer.checkedAgainst });
    } catch (e) {
      setReportError(errorText(e));
    }
  }
  const files = polled.data?.datasets;
  return (
    <section aria-labelledby="datasets-heading">
      <h2 id="datasets-heading">Datasets</h2>
      <UploadForm session={session} onDone={polled.refresh} />
      <ErrorNote error={polled.error} />
      <label className="inline">
        Check token limits of
        <select value={model} onChange={(e) => setModel(e.target.value)}>
          <option value="">no model (structure only)</option>
          {models.map((m) => (
            <option key={m.id} value={m.id}>
              {m.id}
            </option>
          ))}
        </select>
      </label>
      {files && files.length === 0 && <p>No dataset files yet: upload one, or name a gs:// file in a job.</p>}
      {files && files.length > 0 && (
        <Table
          label="Dataset files"
          columns={["File", "For", "Format", "Lines", "Examples", "Problems", "Size", "Uploaded", "Used by", "Report"]}
        >
          {files.map((f) => (
            <tr key={f.uri}>
              <td className="uri">{f.uri}</td>
              <td>{f.purpose}</td>
              <td>{f.exists ? (f.format ?? "–") : "missing"}</td>
              <td>{number(f.lines)}</td>
              <td>{number(f.examples)}</td>
              <td className={f.errors ? "error" : undefined}>
                {f.exists ? `${f.errors ?? 0} error(s), ${f.warnings ?? 0} warning(s)` : "the file is gone"}
              </td>
              <td>{bytes(f.sizeBytes)}</td>
              <td>{f.uploaded ? when(f.createTime) : "named by a job"}</td>
              <td>
                {(f.usedBy ?? []).map((job) => (
                  <a key={job} href={links.job(job.includes("/pipelineJobs/") ? "pipeline" : "tuning", lastId(job))}>
                    {lastId(job)}{" "}
                  </a>
                ))}
              </td>
              <td>
                <button type="button" onClick={() => inspect(f)} disabled={!f.exists}>
                  Report for {lastId(f.uri)}
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <ErrorNote error={reportError} />
      {report && (
        <section aria-label={`Report for ${report.uri}`}>
          <h3>Report: {report.uri}</h3>
          <p className="muted">Checked against: {report.against ?? "structure only"}</p>
          {report.problems.length ? <Problems problems={report.problems} /> : <p>No problems found.</p>}
        </section>
      )}
    </section>
  );
}

function UploadForm({ session, onDone }: { session: Session; onDone: () => void }) {
  const client = useMemo(() => apiClient(session), [session]);
  const [file, setFile] = useState<File | null>(null);
  const [uri, setUri] = useState("");
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (!file) return;
    const purpose = String(new FormData(event.currentTarget).get("purpose"));
    setBusy(true);
    setMessage(null);
    try {
      const done = await uploadDataset(client, session, file, uri, purpose);
      setMessage({
        ok: true,
        text: `Uploaded ${done.uri}: ${done.examples ?? 0} examples, ${done.errors ?? 0} error(s)`,
      });
      onDone();
    } catch (e) {
      setMessage({ ok: false, text: errorText(e) });
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="upload" onSubmit={submit} aria-label="Upload a dataset">
      <FileAndLocation session={session} location={uri} onFile={setFile} onLocation={setUri} />
      <label>
        For
        <select name="purpose" defaultValue="supervised">
          {PURPOSES.map(([id, label]) => (
            <option key={id} value={id}>
              {label}
            </option>
          ))}
        </select>
      </label>
      <button type="submit" disabled={!file || !uri || busy}>
        {busy ? "Uploading…" : "Upload"}
      </button>
      {!file && <span className="muted">Choose a file to upload</span>}
      {message && (
        <p role={message.ok ? "status" : "alert"} className={message.ok ? undefined : "error"}>
          {message.text}
        </p>
      )}
    </form>
  );
}
