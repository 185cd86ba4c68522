// Create a tuned model: choose a flow, fill in its form. The server checks the request as create would (preview) while
// it is edited: the dataset's line-numbered report, and what the job will cost here (examples, trained tokens,
// steps, an estimated duration from this server's measured throughput); the same request as snippets to copy.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { apiClient, errorText, lastId, ok, where, type JobPreview, type Session } from "../api/client";
import { CopyBlock, ErrorNote } from "../components/bits";
import { DataStats } from "../components/Histogram";
import { Problems } from "../components/Problems";
import { describeModel, useBaseModels, useLocations } from "../catalog";
import { DatasetField } from "../forms/DatasetField";
import { FLOWS, type Context, type Field, type Flow, type Values } from "../forms/flows";
import { number, seconds } from "../format";
import { usePolling } from "../hooks";
import { go, links } from "../route";

const PREVIEW_DELAY_MS = 500;

export function CreatePage({
  session,
  flowId,
  onLocation,
}: {
  session: Session;
  flowId?: string;
  onLocation: (l: string) => void;
}) {
  const flow = FLOWS.find((f) => f.id === flowId);
  if (!flow)
    return (
      <section aria-labelledby="create-heading">
        <h2 id="create-heading">Create tuned model</h2>
        {flowId && <p className="error">No flow {flowId}; choose one below.</p>}
        <ul className="flows">
          {FLOWS.map((f) => (
            <li key={f.id}>
              <a href={links.create(f.id)}>{f.label}</a>
              <p>{f.summary}</p>
            </li>
          ))}
        </ul>
      </section>
    );
  return <FlowForm key={flow.id} session={session} flow={flow} onLocation={onLocation} />;
}

type Preview = { data?: JobPreview; error?: string; checking: boolean };

function FlowForm({ session, flow, onLocation }: { session: Session; flow: Flow; onLocation: (l: string) => void }) {
  const client = useMemo(() => apiClient(session), [session]);
  const { models, error: catalogError } = useBaseModels(session);
  const locations = useLocations(session);
  const files = usePolling(
    () =>
      ok(
        client.GET("/v1/projects/{project}/locations/{location}/tuneforge/datasets", {
          params: { path: where(session) },
        }),
      ),
    [client],
    0,
  );
  const registry = usePolling(
    () => ok(client.GET("/v1/projects/{project}/locations/{location}/models", { params: { path: where(session) } })),
    [client],
    0,
  );
  const allowed = models.filter(flow.models);
  const [values, setValues] = useState<Values>((): Values =>
    Object.fromEntries([
      ["region", session.location],
      ...flow.fields.filter((f) => f.initial !== undefined).map((f) => [f.key, f.initial!]),
    ]),
  );
  const modelId = (values.baseModel as string) || allowed[0]?.id || "";
  const ctx: Context = {
    session,
    model: models.find((m) => m.id === modelId),
    models,
    locations,
    registry: registry.data?.models ?? [],
  };
  const filled: Values = { ...values, baseModel: modelId };
  for (const f of flow.fields) {
    // A select shows its first choice when its value is not one of its choices; send what it shows.
    const choices = f.kind === "select" ? (f.choices?.(ctx) ?? []) : [];
    if (choices.length && !choices.some((c) => c.value === (filled[f.key] ?? ""))) filled[f.key] = choices[0].value;
  }
  const body = flow.body(filled, ctx);
  const key = JSON.stringify(body);
  const region = (filled.region as string) || session.location;
  const [preview, setPreview] = useState<Preview>({ checking: false });
  const [submit, setSubmit] = useState<{ busy?: boolean; error?: string }>({});

  useEffect(() => {
    if (!filled.training || !modelId) {
      setPreview({ checking: false });
      return;
    }
    setPreview((p) => ({ ...p, checking: true }));
    let stale = false;
    const timer = window.setTimeout(async () => {
      try {
        const path = { project: session.project, location: region };
        const data = await ok(
          flow.api === "tuningJobs"
            ? client.POST("/v1/projects/{project}/locations/{location}/tuningJobs:preview", {
                params: { path },
                body: body as never,
              })
            : client.POST("/v1/projects/{project}/locations/{location}/pipelineJobs:preview", {
                params: { path },
                body: body as never,
              }),
        );
        if (!stale) setPreview({ data, checking: false });
      } catch (e) {
        if (!stale) setPreview({ error: errorText(e), checking: false });
      }
    }, PREVIEW_DELAY_MS);
    return () => {
      stale = true;
      window.clearTimeout(timer);
    };
    // the preview follows the request body (``key``) and where it goes
  }, [key, region, client]);

  const missing = flow.fields.filter((f) => f.required && !filled[f.key] && (!f.shown || f.shown(filled, ctx)));
  const errors = (preview.data?.problems ?? []).filter((p) => p.severity === "error").length;
  const why = missing.length
    ? `Fill in ${missing.map((f) => f.label.toLowerCase()).join(" and ")} first`
    : preview.checking
      ? "Checking the data…"
      : preview.error
        ? `The server refuses this request: ${preview.error}`
        : errors
          ? `The dataset has ${errors} error(s), listed above; fix them or choose another file`
          : !preview.data
            ? "Checking the data…"
            : "";

  async function create(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (why) return;
    setSubmit({ busy: true });
    try {
      const path = { project: session.project, location: region };
      const job =
        flow.api === "tuningJobs"
          ? await ok(
              client.POST("/v1/projects/{project}/locations/{location}/tuningJobs", {
                params: { path },
                body: body as never,
              }),
            )
          : await ok(
              client.POST("/v1/projects/{project}/locations/{location}/pipelineJobs", {
                params: { path },
                body: body as never,
              }),
            );
      if (region !== session.location) onLocation(region);
      go(links.job(flow.api === "tuningJobs" ? "tuning" : "pipeline", lastId(job.name)));
    } catch (e) {
      setSubmit({ error: errorText(e) });
    }
  }

  const set = (k: string, v: string | boolean) => setValues((old) => ({ ...old, [k]: v }));
  const shown = flow.fields.filter((f) => !f.shown || f.shown(filled, ctx));
  const field = (f: Field) => (
    <FieldInput
      key={f.key}
      field={f}
      value={filled[f.key]}
      onChange={(v) => set(f.key, v)}
      ctx={ctx}
      allowed={allowed}
      session={session}
      purpose={flow.purpose}
      known={files.data?.datasets ?? []}
    />
  );
  return (
    <section aria-labelledby="create-heading">
      <p>
        <a href={links.create()}>← All flows</a>
      </p>
      <h2 id="create-heading">{flow.label}</h2>
      <p>{flow.summary}</p>
      <ErrorNote error={catalogError} />
      <form className="create" onSubmit={create} aria-label={flow.label} noValidate>
        <div className="fields">{shown.filter((f) => !f.advanced).map(field)}</div>
        <details className="advanced">
          <summary>Advanced options</summary>
          <div className="fields">{shown.filter((f) => f.advanced).map(field)}</div>
        </details>
        <PreviewPanel preview={preview} />
        <div className="submit">
          <button type="submit" className="primary" disabled={!!why || submit.busy} aria-describedby="why-disabled">
            {submit.busy ? "Starting…" : "Start tuning"}
          </button>
          <span id="why-disabled" className="muted" role="status">
            {why}
          </span>
        </div>
        <ErrorNote error={submit.error} />
      </form>
      <h3>The same request as code</h3>
      {flow.snippets(filled, ctx, body).map((s) => (
        <CopyBlock key={s.title} title={s.title} text={s.text} />
      ))}
    </section>
  );
}

function FieldInput({
  field,
  value,
  onChange,
  ctx,
  allowed,
  session,
  purpose,
  known,
}: {
  field: Field;
  value: string | boolean | undefined;
  onChange: (v: string | boolean) => void;
  ctx: Context;
  allowed: import("../api/client").BaseModelInfo[];
  session: Session;
  purpose: string;
  known: import("../api/client").DatasetFile[];
}) {
  const help = field.help ? <span className="help">{field.help}</span> : null;
  switch (field.kind) {
    case "model":
      return (
        <label>
          {field.label}
          <select value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
            {allowed.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id}
              </option>
            ))}
          </select>
          {ctx.model && <span className="help">{describeModel(ctx.model)}</span>}
          {ctx.model?.note && <span className="help">{ctx.model.note}</span>}
        </label>
      );
    case "dataset":
      return (
        <DatasetField
          label={field.label}
          value={String(value ?? "")}
          onChange={onChange}
          session={session}
          purpose={purpose}
          known={known}
          required={field.required}
        />
      );
    case "select":
      return (
        <label>
          {field.label}
          <select value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
            {(field.choices?.(ctx) ?? []).map((c) => (
              <option key={c.value} value={c.value}>
                {c.label}
              </option>
            ))}
          </select>
          {help}
        </label>
      );
    case "checkbox":
      return (
        <label className="check">
          <input type="checkbox" checked={value !== false} onChange={(e) => onChange(e.target.checked)} />
          {field.label}
          {help}
        </label>
      );
    default:
      return (
        <label>
          {field.label}
          <input
            type={field.kind === "number" ? "number" : "text"}
            min={field.min}
            step={field.step}
            value={String(value ?? "")}
            placeholder={field.placeholder?.(ctx)}
            onChange={(e) => onChange(e.target.value)}
            maxLength={field.key === "displayName" ? 128 : undefined}
          />
          {help}
        </label>
      );
  }
}

function PreviewPanel({ preview }: { preview: Preview }) {
  const p = preview.data;
  return (
    <section className="preview" aria-label="What this job will do" aria-busy={preview.checking}>
      <h3>Before you start</h3>
      {preview.checking && <p role="status">Checking the data…</p>}
      {preview.error && (
        <p role="alert" className="error">
          {preview.error}
        </p>
      )}
      {!p && !preview.error && !preview.checking && (
        <p className="muted">Choose the training data to see the report and the cost.</p>
      )}
      {p && <Problems problems={p.problems ?? []} />}
      {p?.ready && (
        <>
          <dl className="cost">
            <div>
              <dt>Examples</dt>
              <dd>{number(p.examples)}</dd>
            </div>
            <div>
              <dt>Trained tokens</dt>
              <dd>{p.trainedTokens ? number(p.trainedTokens) : "after the teacher's step"}</dd>
            </div>
            <div>
              <dt>Steps</dt>
              <dd>{number(p.plan?.total_steps as number | undefined)}</dd>
            </div>
            <div>
              <dt>Estimated duration here</dt>
              <dd>{p.estimate ? `about ${seconds(p.estimate.seconds)}` : "not measured yet"}</dd>
            </div>
          </dl>
          <p className="muted">{p.estimate ? p.estimate.basis : p.estimateNote}</p>
          {p.runsOn && (
            <p>
              Runs on <strong>{p.runsOn}</strong>
              {p.standIn ? " (dev mode stand-in)" : ""}
              {p.plan
                ? ` · ${p.plan.epochs} epoch(s) of ${p.plan.steps_per_epoch} steps, batch ${p.plan.batch_size}, learning rate ${p.plan.learning_rate}${p.plan.adapter_size ? `, adapter size ${p.plan.adapter_size}` : ""} on ${p.plan.device}`
                : ""}
            </p>
          )}
          {p.tuningDataStats && <DataStats stats={p.tuningDataStats as Record<string, unknown>} />}
        </>
      )}
    </section>
  );
}
