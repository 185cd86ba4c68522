// Uploading a dataset file into the server's bucket root (a new file; the server never replaces one).
import { ok, where, type Client, type Session } from "./api/client";

export const PURPOSES = [
  ["supervised", "Supervised tuning (SFT)"],
  ["preference", "Preference tuning"],
  ["distillation", "Distillation prompts"],
  ["code-generation", "Code generation pipeline"],
  ["code-chat", "Code chat pipeline"],
] as const;

/** Where an upload goes unless the user says otherwise: the project's datasets bucket, under the file's name. */
export function defaultUploadUri(session: Session, fileName: string): string {
  const name = fileName.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/\.jsonl?$/i, "") || "dataset";
  return `gs://${session.project}-datasets/${name}.jsonl`;
}

export async function uploadDataset(client: Client, session: Session, file: File, uri: string, purpose: string) {
  const bytes = await file.arrayBuffer(); // sent as it is: the server reports a file that is not UTF-8 itself
  return ok(
    client.POST("/v1/projects/{project}/locations/{location}/tuneforge/datasets:upload", {
      params: { path: where(session), query: { uri, purpose } },
      body: bytes as unknown as string, // the route's body is raw bytes (application/octet-stream)
      bodySerializer: (body) => body as unknown as BodyInit,
      headers: { "Content-Type": "application/octet-stream" },
    }),
  );
}
