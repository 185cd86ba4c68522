// The two inputs of an upload: the JSONL file from this computer, and where in the bucket root it goes (proposed from
// the file's name when one is chosen).
import type { Session } from "../api/client";
import { defaultUploadUri } from "../datasets";

export function FileAndLocation({
  session,
  location,
  onFile,
  onLocation,
}: {
  session: Session;
  location: string;
  onFile: (file: File | null) => void;
  onLocation: (uri: string) => void;
}) {
  return (
    <>
      <label>
        JSONL file
        <input
          type="file"
          accept=".jsonl,application/jsonl,application/x-ndjson"
          onChange={(e) => {
            const chosen = e.target.files?.[0] ?? null;
            onFile(chosen);
            if (chosen) onLocation(defaultUploadUri(session, chosen.name));
          }}
        />
      </label>
      <label>
        Dataset location
        <input
          value={location}
          onChange={(e) => onLocation(e.target.value)}
          placeholder="gs://bucket/path/file.jsonl"
        />
      </label>
    </>
  );
}
