import { LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { useEffect, useRef } from "react";

echarts.use([LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export type Series = Record<string, [number, number][]>; // metric name -> [step, value] points

// One chart of several metrics against step (ECharts), redrawn as points arrive.
export function MetricsChart({ title, series }: { title: string; series: Series }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const points = Object.values(series).reduce((n, s) => n + s.length, 0);

  useEffect(() => {
    if (!box.current) return;
    chart.current = echarts.init(box.current);
    const resize = () => chart.current?.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.current?.dispose();
    };
  }, []);

  useEffect(() => {
    chart.current?.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 48, right: 16, top: 32, bottom: 32 },
      xAxis: { type: "value", name: "step", minInterval: 1 },
      yAxis: { type: "value", scale: true },
      series: Object.entries(series).map(([name, data]) => ({ name, type: "line", showSymbol: false, data })),
    });
  }, [series]);

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} className="chart-box" role="img" aria-label={`${title}: ${points} points`} data-points={points} />
    </figure>
  );
}
