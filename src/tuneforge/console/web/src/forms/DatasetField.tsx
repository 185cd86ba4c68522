// A dataset field as the Console has it: an existing gs:// file (with the files the server knows as suggestions), or
// a JSONL file from this computer uploaded into the server's bucket root.
import { useId, useMemo, useState } from "react";
import { apiClient, errorText, type DatasetFile, type Session } from "../api/client";
import { uploadDataset } from "../datasets";
import { FileAndLocation } from "./FileAndLocation";

export function DatasetField({
  label,
  value,
  onChange,
  session,
  purpose,
  known,
  required,
}: {
  label: string;
  value: string;
  onChange: (uri: string) => void;
  session: Session;
  purpose: string;
  known: DatasetFile[];
  required?: boolean;
}) {
  const id = useId();
  const client = useMemo(() => apiClient(session), [session]);
  const [how, setHow] = useState<"existing" | "upload">("existing");
  const [file, setFile] = useState<File | null>(null);
  const [target, setTarget] = useState("");
  const [state, setState] = useState<{ busy?: boolean; error?: string; done?: string }>({});
  async function upload() {
    if (!file) return;
    setState({ busy: true });
    try {
      const uploaded = await uploadDataset(client, session, file, target, purpose);
      setState({ done: `Uploaded ${uploaded.uri}` });
      onChange(uploaded.uri);
      setHow("existing");
    } catch (e) {
      setState({ error: errorText(e) });
    }
  }
  return (
    <fieldset className="dataset">
      <legend>
        {label}
        {required ? " (required)" : ""}
      </legend>
      <div className="choice" role="radiogroup" aria-label={`${label}: where the file is`}>
        <label className="check">
          <input type="radio" name={`${id}-how`} checked={how === "existing"} onChange={() => setHow("existing")} />
          Existing file on Cloud Storage
        </label>
        <label className="check">
          <input type="radio" name={`${id}-how`} checked={how === "upload"} onChange={() => setHow("upload")} />
          Upload a JSONL file
        </label>
      </div>
      {how === "existing" ? (
        <label>
          Cloud Storage file path
          <input
            list={`${id}-known`}
            value={value}
            onChange={(e) => onChange(e.target.value.trim())}
            placeholder="gs://bucket/path/file.jsonl"
            autoComplete="off"
          />
          <datalist id={`${id}-known`}>
            {known.map((f) => (
              <option key={f.uri} value={f.uri} />
            ))}
          </datalist>
        </label>
      ) : (
        <div className="upload">
          <FileAndLocation session={session} location={target} onFile={setFile} onLocation={setTarget} />
          <button type="button" onClick={upload} disabled={!file || !target || state.busy}>
            {state.busy ? "Uploading…" : `Upload ${label.toLowerCase()}`}
          </button>
        </div>
      )}
      {state.error && (
        <p role="alert" className="error">
          {state.error}
        </p>
      )}
      {state.done && <p role="status">{state.done}</p>}
    </fieldset>
  );
}
