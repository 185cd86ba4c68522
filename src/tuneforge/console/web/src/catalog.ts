// What the server offers: the base models it tunes (the catalog) and the regions it accepts jobs in, loaded once.
import { useMemo } from "react";
import { apiClient, ok, where, type BaseModelInfo, type Location, type Session } from "./api/client";
import { usePolling } from "./hooks";

export function useBaseModels(session: Session): { models: BaseModelInfo[]; error?: string } {
  const client = useMemo(() => apiClient(session), [session]);
  const polled = usePolling(
    () =>
      ok(
        client.GET("/v1/projects/{project}/locations/{location}/tuneforge/baseModels", {
          params: { path: where(session) },
        }),
      ),
    [client],
    0,
  );
  return { models: polled.data?.models ?? [], error: polled.error };
}

/** "FULL (1,024 tokens), PEFT_ADAPTER (1,024 tokens) · text, image · runs on tiny-llama (dev stand-in)" */
export function describeModel(m: BaseModelInfo): string {
  const modes = (m.modes ?? []).map(
    (x) => `${x.tuningMode === "FULL" ? "full" : "LoRA"} ≤ ${x.maxSeqLen.toLocaleString()} tokens`,
  );
  const runs = m.runsOn ? ` · runs on ${m.runsOn}${m.standIn ? " (dev stand-in)" : ""}` : "";
  return `${modes.join(", ")} · ${(m.modalities ?? ["text"]).join(", ")}${runs}`;
}

export const OPEN_MODEL_LABEL = "tuneforge-open-model-tuning"; // the regions the open-model documents list

export function useLocations(session: Session): Location[] {
  const client = useMemo(() => apiClient(session), [session]);
  const polled = usePolling(
    () => ok(client.GET("/v1/projects/{project}/locations", { params: { path: { project: session.project } } })),
    [client],
    0,
  );
  return polled.data?.locations ?? [];
}
