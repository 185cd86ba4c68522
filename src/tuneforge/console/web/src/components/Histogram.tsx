// A distribution of the data statistics (Vertex's DatasetDistribution: buckets, mean, percentiles) as a small bar chart.
import { BarChart } from "echarts/charts";
import { GridComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { useEffect, useRef } from "react";
import { number } from "../format";

echarts.use([BarChart, GridComponent, TooltipComponent, CanvasRenderer]);

export interface Distribution {
  mean?: number | null;
  median?: number | null;
  p5?: number | null;
  p95?: number | null;
  min?: number | null;
  max?: number | null;
  buckets?: { count: number; left: number; right: number }[] | null;
}

export function Histogram({ title, data }: { title: string; data?: Distribution | null }) {
  const box = useRef<HTMLDivElement>(null);
  const buckets = data?.buckets ?? [];
  const drawn = JSON.stringify(buckets); // redraw when the buckets change, not on every render
  useEffect(() => {
    if (!box.current) return;
    const chart = echarts.init(box.current);
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      grid: { left: 40, right: 8, top: 8, bottom: 24 },
      xAxis: { type: "category", data: buckets.map((b) => `${number(b.left)}–${number(b.right)}`) },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: "bar", data: buckets.map((b) => b.count), itemStyle: { color: "#2f5f98" } }],
    });
    const resize = () => chart.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.dispose();
    };
  }, [drawn]);
  if (!data) return null;
  const summary = `mean ${number(data.mean, 1)}, median ${number(data.median, 1)}, p5 ${number(data.p5, 1)}, p95 ${number(data.p95, 1)}, range ${number(data.min)}–${number(data.max)}`;
  return (
    <figure className="histogram">
      <figcaption>
        {title}
        <span className="muted"> {summary}</span>
      </figcaption>
      <div
        ref={box}
        className="histogram-box"
        role="img"
        aria-label={`${title}: ${summary}`}
        data-bars={buckets.length}
      />
    </figure>
  );
}

const SUPERVISED = [
  ["userInputTokenDistribution", "Input tokens per example"],
  ["userOutputTokenDistribution", "Output tokens per example"],
  ["userMessagePerExampleDistribution", "Messages per example"],
] as const;

type Stats = Record<string, unknown> | null | undefined;

/** The histograms of a job's (or a preview's) tuningDataStats, whichever method made them. */
export function DataStats({ stats }: { stats: Stats }) {
  const inner = (stats?.supervisedTuningDataStats ??
    stats?.preferenceOptimizationDataStats ??
    (stats?.distillationDataStats as Stats)?.trainingDatasetStats) as Record<string, unknown> | undefined;
  if (!inner) return <p className="muted">No dataset statistics yet.</p>;
  const count = inner.tuningDatasetExampleCount as string | undefined;
  const tokens = inner.totalBillableTokenCount as string | undefined;
  return (
    <section aria-label="Dataset statistics">
      <p>
        {number(count)} examples · {number(inner.tuningStepCount as string)} steps
        {tokens ? ` · ${number(tokens)} billable tokens` : ""}
        {inner.totalTruncatedExampleCount && inner.totalTruncatedExampleCount !== "0"
          ? ` · ${inner.totalTruncatedExampleCount} truncated`
          : ""}
      </p>
      <div className="histograms">
        {SUPERVISED.map(([key, title]) => (
          <Histogram key={key} title={title} data={inner[key] as Distribution | undefined} />
        ))}
      </div>
    </section>
  );
}
