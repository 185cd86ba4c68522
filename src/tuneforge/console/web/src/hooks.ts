import { useEffect, useState } from "react";
import { errorText } from "./api/client";

const MAX_BACKOFF_MS = 60_000;

export interface Polled<T> {
  data?: T;
  error?: string;
  refresh: () => void;
}

/** ``load`` now and every ``everyMs`` (doubling up to a minute while it fails) until ``done(data)``; again from the
 * start when ``deps`` change or ``refresh()`` is called. ``everyMs`` 0 loads once. */
export function usePolling<T>(
  load: () => Promise<T>,
  deps: unknown[],
  everyMs = 3000,
  done?: (data: T) => boolean,
): Polled<T> {
  const [state, setState] = useState<{ data?: T; error?: string }>({});
  const [round, setRound] = useState(0);
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    let delay = everyMs;
    async function run() {
      try {
        const data = await load();
        if (stopped) return;
        setState({ data });
        delay = everyMs;
        if (!everyMs || done?.(data)) return;
      } catch (error) {
        if (stopped) return;
        setState((old) => ({ data: old.data, error: errorText(error) }));
        if (!everyMs) return;
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
      timer = window.setTimeout(run, delay);
    }
    run();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
    // the caller names what ``load`` depends on (``deps``)
  }, [...deps, round]);
  return { ...state, refresh: () => setRound((n) => n + 1) };
}
