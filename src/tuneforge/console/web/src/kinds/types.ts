// What the console knows about a kind of job. The jobs list, the details route and compare only talk to this
// interface, so a new kind (OpenAI fine-tuning jobs, say) is one new module added to KINDS, touching no other view.
import type { ReactNode } from "react";
import type { Client, Session } from "../api/client";

export interface JobRow {
  kind: string; // the JobKind's id
  id: string;
  name: string; // the resource name
  title: string;
  baseModel: string;
  method: string; // "SFT · LoRA", "Code generation"
  api: string; // the API that made it: tuningJobs, pipelineJobs
  state: string; // the wire spelling
  createTime?: string | null;
  startTime?: string | null;
  endTime?: string | null;
  step?: number;
  totalSteps?: number | null;
  secondsPerStep?: number | null; // measured (training time per step so far), for the ETA
  comparable: boolean; // has metric series to overlay
}

export interface ListQuery {
  state?: string; // short: running, succeeded…
  model?: string;
  method?: string; // one of the kind's methods' ids
}

export interface Page {
  rows: JobRow[];
  next?: string;
}

/** What compare overlays and sets side by side for one job. */
export interface Comparison {
  title: string;
  series: Record<string, [number, number][]>; // metric name -> [step, value]
  config: Record<string, string>; // flattened configuration: "supervisedTuningSpec.hyperParameters.epochCount" -> "3"
}

export interface JobKind {
  id: string;
  label: string;
  methods: { id: string; label: string }[];
  states: string[]; // the short states its jobs can be in
  list(client: Client, session: Session, query: ListQuery, pageSize: number, token?: string): Promise<Page>;
  Details(props: { session: Session; id: string }): ReactNode;
  comparison?(client: Client, session: Session, id: string): Promise<Comparison>; // kinds with metric series
}

/** ``{a: {b: 1}}`` -> ``{"a.b": "1"}`` (arrays as JSON). */
export function flatten(value: unknown, prefix = "", out: Record<string, string> = {}): Record<string, string> {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (value !== null && value !== undefined && value !== "") {
    out[prefix] = Array.isArray(value) ? JSON.stringify(value) : String(value);
  }
  return out;
}

/** An AIP-160 filter of ``field="value"`` clauses joined by AND (empty values left out). */
export function filter(clauses: Record<string, string | undefined>): string | undefined {
  const parts = Object.entries(clauses)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}="${v}"`);
  return parts.length ? parts.join(" AND ") : undefined;
}
