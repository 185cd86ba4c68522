// How the console writes times, durations, states and numbers.

export function shortState(state: string | null | undefined): string {
  return (state ?? "unspecified").replace(/^(JOB|PIPELINE)_STATE_/, "").toLowerCase();
}

export const ENDED = new Set(["succeeded", "failed", "cancelled"]);

export function seconds(total: number): string {
  const s = Math.max(0, Math.round(total));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function duration(start?: string | null, end?: string | null, now = Date.now()): string {
  if (!start) return "–";
  return seconds(((end ? Date.parse(end) : now) - Date.parse(start)) / 1000);
}

export function when(time?: string | null): string {
  return time ? new Date(time).toLocaleString() : "–";
}

export function number(n: number | string | null | undefined, digits = 0): string {
  if (n === null || n === undefined || n === "") return "–";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toLocaleString(undefined, { maximumFractionDigits: 1 })} ${units[unit]}`;
}
