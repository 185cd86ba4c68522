// Small pieces every page uses: the state badge, an error line, a progress bar, a copyable snippet.
import { useState, type ReactNode } from "react";
import { shortState } from "../format";

export function StateBadge({ state }: { state: string | null | undefined }) {
  const short = shortState(state);
  return <span className={`badge ${short}`}>{short}</span>;
}

/** A table's horizontal scroll container: focusable and named, so a keyboard can scroll it (narrow screens). */
export function Scroll({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}

/** A table with its column headings, in a Scroll. */
export function Table({
  label,
  columns,
  children,
  className,
}: {
  label: string;
  columns: ReactNode[];
  children: ReactNode;
  className?: string;
}) {
  return (
    <Scroll label={label}>
      <table className={className}>
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th scope="col" key={i}>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </Scroll>
  );
}

export function ErrorNote({ error }: { error?: string | null }) {
  return error ? (
    <p role="alert" className="error">
      {error}
    </p>
  ) : null;
}

export function ProgressBar({ step, total, label }: { step: number; total?: number | null; label: string }) {
  const max = total && total > 0 ? total : 1;
  return (
    <span className="progress">
      <progress value={Math.min(step, max)} max={max} aria-label={label} />
      <span>{total ? `${step} / ${total}` : step ? `step ${step}` : ""}</span>
    </span>
  );
}

export function CopyBlock({ title, text }: { title: string; text: string }) {
  const [copied, setCopied] = useState(false);
  async function copy() {
    await navigator.clipboard?.writeText(text);
    setCopied(true);
    window.setTimeout(() => setCopied(false), 1500);
  }
  return (
    <figure className="snippet">
      <figcaption>
        {title}{" "}
        <button type="button" onClick={copy}>
          {copied ? "Copied" : `Copy ${title}`}
        </button>
      </figcaption>
      <pre tabIndex={0}>{text}</pre>
    </figure>
  );
}
