// Tabs as the ARIA pattern has them: a tablist of buttons (arrow keys move between them), one panel shown.
import { useId, useRef, type KeyboardEvent, type ReactNode } from "react";

export function Tabs({
  tabs,
  current,
  onChange,
  label,
}: {
  tabs: { id: string; label: string; panel: () => ReactNode }[];
  current: string;
  onChange: (id: string) => void;
  label: string;
}) {
  const base = useId();
  const buttons = useRef<(HTMLButtonElement | null)[]>([]);
  const index = Math.max(
    0,
    tabs.findIndex((t) => t.id === current),
  );
  function key(event: KeyboardEvent) {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    const next = (index + step + tabs.length) % tabs.length;
    onChange(tabs[next].id);
    buttons.current[next]?.focus();
  }
  const shown = tabs[index];
  return (
    <div className="tabs">
      <div role="tablist" aria-label={label} onKeyDown={key}>
        {tabs.map((t, i) => (
          <button
            key={t.id}
            ref={(el) => {
              buttons.current[i] = el;
            }}
            type="button"
            role="tab"
            id={`${base}-${t.id}`}
            aria-selected={i === index}
            aria-controls={`${base}-${t.id}-panel`}
            tabIndex={i === index ? 0 : -1}
            onClick={() => onChange(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`${base}-${shown.id}-panel`} aria-labelledby={`${base}-${shown.id}`} tabIndex={0}>
        {shown.panel()}
      </div>
    </div>
  );
}
