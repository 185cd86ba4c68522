// The model registry (versions, labels, where each is deployed), endpoints with their deployed models, and what the
// serving engine holds (/tuneforge/serving); deploy and undeploy.
import { useMemo, useState } from "react";
import { apiClient, errorText, lastId, ok, where, type Model, type Session } from "../api/client";
import { ErrorNote, Table } from "../components/bits";
import { ConfirmButton } from "../components/Confirm";
import { deployModel, undeployModel } from "../deploy";
import { bytes, when } from "../format";
import { usePolling } from "../hooks";
import { links } from "../route";

export function ModelsPage({ session }: { session: Session }) {
  const client = useMemo(() => apiClient(session), [session]);
  const polled = usePolling(
    async () => {
      const [models, endpoints] = await Promise.all([
        ok(client.GET("/v1/projects/{project}/locations/{location}/models", { params: { path: where(session) } })),
        ok(client.GET("/v1/projects/{project}/locations/{location}/endpoints", { params: { path: where(session) } })),
      ]);
      return { models: models.models ?? [], endpoints: endpoints.endpoints ?? [] };
    },
    [client],
    5000,
  );
  const serving = usePolling(() => ok(client.GET("/tuneforge/serving")), [client], 5000);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  async function deploy(model: Model) {
    setBusy(model.name);
    setError(null);
    try {
      const endpoint = await deployModel(client, session, model.name, model.displayName || lastId(model.name));
      setMessage(`Deployed ${model.displayName} to ${endpoint}`);
      polled.refresh();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(null);
    }
  }
  const data = polled.data;
  return (
    <section aria-labelledby="models-heading">
      <h2 id="models-heading">Models and endpoints</h2>
      <ErrorNote error={polled.error ?? error} />
      {message && <p role="status">{message}</p>}
      <h3>Model registry</h3>
      {data && data.models.length === 0 && <p>No models yet: a finished tuning job registers its model here.</p>}
      {data && data.models.length > 0 && (
        <Table
          label="Registered models"
          columns={["Model", "Version", "Base model", "Labels", "Created", "Deployed on", "Deploy"]}
        >
          {data.models.map((m) => (
            <tr key={m.name}>
              <td>
                <span className="name">{m.displayName}</span>
                <span className="id">{lastId(m.name)}</span>
              </td>
              <td>
                {m.versionId} ({(m.versionAliases ?? []).join(", ")})
              </td>
              <td>{m.baseModelSource?.modelGardenSource.publicModelName ?? "–"}</td>
              <td>
                {Object.entries(m.labels ?? {}).map(([k, v]) => (
                  <code key={k} className="label">
                    {k}={v}
                  </code>
                ))}
              </td>
              <td>{when(m.createTime)}</td>
              <td>{(m.deployedModels ?? []).map((d) => lastId(d.endpoint)).join(", ") || "–"}</td>
              <td>
                <button type="button" onClick={() => deploy(m)} disabled={busy !== null}>
                  {busy === m.name ? "Deploying…" : `Deploy ${m.displayName}`}
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <h3>Endpoints</h3>
      {data && data.endpoints.length === 0 && <p>No endpoints yet.</p>}
      {data && data.endpoints.length > 0 && (
        <Table label="Endpoints" columns={["Endpoint", "Deployed models", "Try"]}>
          {data.endpoints.map((e) => (
            <tr key={e.name}>
              <td>
                <span className="name">{e.displayName}</span>
                <span className="id">{lastId(e.name)}</span>
              </td>
              <td>
                {(e.deployedModels ?? []).length === 0 && "none"}
                <ul className="plain">
                  {(e.deployedModels ?? []).map((d) => (
                    <li key={d.id}>
                      {d.displayName} ({lastId(d.model)}, {(e.trafficSplit ?? {})[d.id ?? ""] ?? 0}% of traffic){" "}
                      <ConfirmButton
                        label={`Undeploy ${d.displayName}`}
                        question={`Undeploy ${d.displayName} from ${e.displayName}? Requests to the endpoint stop reaching it.`}
                        confirm="Undeploy"
                        danger
                        onConfirm={async () => {
                          await undeployModel(client, session, e.name ?? "", d.id ?? "");
                          polled.refresh();
                        }}
                      />
                    </li>
                  ))}
                </ul>
              </td>
              <td>
                {(e.deployedModels ?? []).length > 0 && (
                  <a href={links.playground(e.name ?? "")}>Open {e.displayName} in the playground</a>
                )}
              </td>
            </tr>
          ))}
        </Table>
      )}
      <h3>What the serving engine holds</h3>
      <Serving stats={serving.data as ServingStats | undefined} error={serving.error} />
    </section>
  );
}

type ServingStats = {
  device: string;
  dtype: string;
  loadedBytes: number;
  groups: {
    weights: string;
    paramBytes: number;
    adapters: string[];
    deployments: number;
    activeRows: number;
    waiting: number;
    continuousBatching: boolean;
  }[];
};

function Serving({ stats, error }: { stats?: ServingStats; error?: string }) {
  if (error) return <p className="muted">Not shown: {error} (this view needs an API key for every project).</p>;
  if (!stats) return <p>Loading…</p>;
  return (
    <>
      <p>
        {stats.device} · {stats.dtype} · {bytes(stats.loadedBytes)} loaded
      </p>
      {stats.groups.length === 0 ? (
        <p>Nothing loaded: models load on deploy or on their first request.</p>
      ) : (
        <Table
          label="Loaded weights"
          columns={["Weights", "Size", "Adapters", "Deployments", "Active / waiting requests", "Batching"]}
        >
          {stats.groups.map((g) => (
            <tr key={g.weights}>
              <td className="uri">{g.weights}</td>
              <td>{bytes(g.paramBytes)}</td>
              <td>{g.adapters.length}</td>
              <td>{g.deployments}</td>
              <td>
                {g.activeRows} / {g.waiting}
              </td>
              <td>{g.continuousBatching ? "continuous" : "dynamic"}</td>
            </tr>
          ))}
        </Table>
      )}
    </>
  );
}
