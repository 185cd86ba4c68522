// How the jobs list describes a TuningJob: its method and mode, its state, its times.
import type { TuningJob } from "./api/client";

type Spec = { tuningMode?: string | null } | null | undefined;

export function method(job: TuningJob): string {
  const [name, spec]: [string, Spec] = job.preferenceOptimizationSpec
    ? ["Preference", job.preferenceOptimizationSpec as Spec]
    : job.distillationSpec
      ? ["Distillation", job.distillationSpec as Spec]
      : ["SFT", job.supervisedTuningSpec as Spec];
  const mode = spec?.tuningMode === "TUNING_MODE_FULL" ? "full" : "LoRA";
  return `${name} · ${mode}`;
}

export function shortState(state: string | null | undefined): string {
  return (state ?? "JOB_STATE_UNSPECIFIED").replace("JOB_STATE_", "").toLowerCase();
}

export function jobId(job: TuningJob): string {
  return (job.name ?? "").split("/").pop() ?? "";
}

export function duration(job: TuningJob, now: number): string {
  if (!job.startTime) return "–";
  const end = job.endTime ? Date.parse(job.endTime) : now;
  const seconds = Math.max(0, Math.round((end - Date.parse(job.startTime)) / 1000));
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}
