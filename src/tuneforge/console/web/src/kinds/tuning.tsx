// tuningJobs (SFT, preference, distillation; open models and Gemini-style ids): how they are listed and described.
import { ok, where, type TuningJob } from "../api/client";
import { TuningJobDetails } from "./TuningJobDetails";
import { filter, flatten, type JobKind, type JobRow } from "./types";

const METHODS = [
  { id: "supervised", label: "Supervised (SFT)" },
  { id: "preference", label: "Preference (DPO)" },
  { id: "distillation", label: "Distillation" },
];
const LATER_THAN_ANY = 2 ** 31 - 1; // sinceStep past every step: the metrics call then only says where the job is

function tuningMethod(job: TuningJob): { method: string; mode: string } {
  const [method, spec] = job.preferenceOptimizationSpec
    ? ["Preference", job.preferenceOptimizationSpec]
    : job.distillationSpec
      ? ["Distillation", job.distillationSpec]
      : ["SFT", job.supervisedTuningSpec];
  const mode = (spec as { tuningMode?: string | null } | null)?.tuningMode === "TUNING_MODE_FULL" ? "full" : "LoRA";
  return { method, mode };
}

/** What the job was asked to do: the resource without the fields the server writes (name, state, times, outputs). */
export function tuningRequest(job: TuningJob): Record<string, unknown> {
  const written = ["name", "state", "error", "tunedModel", "tuningDataStats"];
  return Object.fromEntries(Object.entries(job).filter(([k]) => !written.includes(k) && !k.endsWith("Time")));
}

export function tuningRow(job: TuningJob): JobRow {
  const { method, mode } = tuningMethod(job);
  const id = (job.name ?? "").split("/").pop() ?? "";
  return {
    kind: "tuning",
    id,
    name: job.name ?? "",
    title: job.tunedModelDisplayName || id,
    baseModel: job.baseModel ?? "",
    method: `${method} · ${mode}`,
    api: "tuningJobs",
    state: job.state ?? "",
    createTime: job.createTime,
    startTime: job.startTime,
    endTime: job.endTime,
    comparable: true,
  };
}

export const tuningKind: JobKind = {
  id: "tuning",
  label: "Tuning jobs",
  methods: METHODS,
  states: ["queued", "pending", "running", "paused", "cancelling", "succeeded", "failed", "cancelled"],
  async list(client, session, query, pageSize, token) {
    const answer = await ok(
      client.GET("/v1/projects/{project}/locations/{location}/tuningJobs", {
        params: {
          path: where(session),
          query: {
            pageSize,
            pageToken: token,
            filter: filter({
              state: query.state && `JOB_STATE_${query.state.toUpperCase()}`,
              base_model: query.model,
              method: query.method,
            }),
          },
        },
      }),
    );
    const rows = (answer.tuningJobs ?? []).map(tuningRow);
    await Promise.all(
      rows
        .filter((r) => r.state === "JOB_STATE_RUNNING")
        .map(async (row) => {
          const m = await ok(
            client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}/metrics", {
              params: { path: { ...where(session), job_id: row.id }, query: { sinceStep: LATER_THAN_ANY } },
            }),
          );
          const p = m.progress;
          row.step = p.step ?? 0;
          row.totalSteps = p.totalSteps;
          row.secondsPerStep = p.trainSeconds && row.step ? p.trainSeconds / row.step : null;
        }),
    );
    return { rows, next: answer.nextPageToken ?? undefined };
  },
  Details: TuningJobDetails,
  async comparison(client, session, id) {
    const path = { ...where(session), job_id: id };
    const job = await ok(
      client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}", { params: { path } }),
    );
    const m = await ok(
      client.GET("/v1/projects/{project}/locations/{location}/tuningJobs/{job_id}/metrics", {
        params: { path, query: { sinceStep: 0 } },
      }),
    );
    const series: Record<string, [number, number][]> = {};
    for (const x of m.metrics ?? []) (series[x.name] ??= []).push([x.step, x.value]);
    const request = tuningRequest(job);
    return {
      title: tuningRow(job).title,
      series,
      config: { ...flatten(request), ...flatten(m.progress.plan ?? {}, "plan") },
    };
  },
};
