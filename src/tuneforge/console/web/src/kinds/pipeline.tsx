// pipelineJobs (code generation, code chat, distillation pipelines): how they are listed and described.
import { ok, where, type PipelineJob, type Schemas } from "../api/client";
import { PipelineJobDetails } from "./PipelineJobDetails";
import { filter, type JobKind, type JobRow } from "./types";

export const PIPELINES: Record<string, string> = {
  "tune-large-model": "Code generation",
  "tune-large-chat-model": "Code chat",
  distillation: "Distillation",
};

export type Task = Schemas["PipelineTaskDetail"];

export function template(job: PipelineJob): string {
  const tasks = job.jobDetail?.taskDetails ?? [];
  return tasks[0]?.taskName ?? "";
}

export function parameters(job: PipelineJob): Record<string, unknown> {
  return ((job.runtimeConfig as { parameterValues?: Record<string, unknown> } | null)?.parameterValues ?? {}) as Record<
    string,
    unknown
  >;
}

function pipelineRow(job: PipelineJob): JobRow {
  const params = parameters(job);
  const kind = template(job);
  const tune = (job.jobDetail?.taskDetails ?? []).find((t) => t.taskName === "tune");
  const meta = tune?.execution?.metadata ?? {};
  const id = (job.name ?? "").split("/").pop() ?? "";
  return {
    kind: "pipeline",
    id,
    name: job.name ?? "",
    title: job.displayName || id,
    baseModel: String(params.large_model_reference ?? params.student_model_reference ?? ""),
    method: `${PIPELINES[kind] ?? kind} pipeline`,
    api: "pipelineJobs",
    state: job.state ?? "",
    createTime: job.createTime,
    startTime: job.startTime,
    endTime: job.endTime,
    step: typeof meta.step === "number" ? meta.step : undefined,
    totalSteps: typeof meta.totalSteps === "number" ? meta.totalSteps : undefined,
    comparable: false,
  };
}

export const pipelineKind: JobKind = {
  id: "pipeline",
  label: "Pipeline jobs",
  methods: Object.entries(PIPELINES).map(([id, label]) => ({ id, label: `${label} pipeline` })),
  states: ["pending", "running", "cancelling", "succeeded", "failed", "cancelled"],
  async list(client, session, query, pageSize, token) {
    const answer = await ok(
      client.GET("/v1/projects/{project}/locations/{location}/pipelineJobs", {
        params: {
          path: where(session),
          query: {
            pageSize,
            pageToken: token,
            filter: filter({
              state: query.state && `PIPELINE_STATE_${query.state.toUpperCase()}`,
              base_model: query.model,
              pipeline_name: query.method,
            }),
          },
        },
      }),
    );
    return { rows: (answer.pipelineJobs ?? []).map(pipelineRow), next: answer.nextPageToken ?? undefined };
  },
  Details: PipelineJobDetails,
};
