// A button that asks before it acts, in a modal <dialog> (focus stays inside it; Escape closes it).
import { useRef, useState } from "react";
import { errorText } from "../api/client";

export function ConfirmButton({
  label,
  question,
  confirm,
  onConfirm,
  danger = false,
}: {
  label: string;
  question: string;
  confirm: string;
  onConfirm: () => Promise<void>;
  danger?: boolean;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function act() {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      dialog.current?.close();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <>
      <button type="button" className={danger ? "danger" : undefined} onClick={() => dialog.current?.showModal()}>
        {label}
      </button>
      <dialog ref={dialog} aria-label={label}>
        <p>{question}</p>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <div className="actions">
          <button type="button" className={danger ? "danger" : "primary"} onClick={act} disabled={busy}>
            {busy ? "Working…" : confirm}
          </button>
          <button type="button" onClick={() => dialog.current?.close()}>
            Keep it
          </button>
        </div>
      </dialog>
    </>
  );
}
