import { pipelineKind } from "./pipeline";
import { tuningKind } from "./tuning";
import type { JobKind } from "./types";

export const KINDS: JobKind[] = [tuningKind, pipelineKind];

export function kindOf(id: string): JobKind | undefined {
  return KINDS.find((k) => k.id === id);
}
