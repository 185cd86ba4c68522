// Deploying and undeploying: the endpoint calls Vertex's SDK makes (create an endpoint, deployModel, undeployModel),
// each a long-running operation the console follows until it is done.
import { ApiError, lastId, ok, where, type Client, type Operation, type Session } from "./api/client";

const POLL_MS = 700;
const TIMEOUT_MS = 300_000;

async function finished(client: Client, session: Session, op: Operation): Promise<Operation> {
  const deadline = Date.now() + TIMEOUT_MS;
  let current = op;
  while (!current.done) {
    if (Date.now() > deadline) throw new Error(`${op.name} did not finish in ${TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, POLL_MS));
    const [, path, opId] = /\/locations\/[^/]+\/(?:(.+)\/)?operations\/([^/]+)$/.exec(current.name ?? "") ?? [];
    current = await ok(
      path
        ? client.GET("/v1/projects/{project}/locations/{location}/{path}/operations/{op_id}", {
            params: { path: { ...where(session), path, op_id: opId } },
          })
        : client.GET("/v1/projects/{project}/locations/{location}/operations/{op_id}", {
            params: { path: { ...where(session), op_id: opId } },
          }),
    );
  }
  const error = current.error as { code?: number; message?: string } | null | undefined;
  if (error) throw new ApiError(error.code ?? 500, error.message ?? "the operation failed");
  return current;
}

/** A new endpoint with ``model`` deployed on it (all its traffic); resolves with the endpoint's resource name. */
export async function deployModel(client: Client, session: Session, model: string, displayName: string) {
  const created = await finished(
    client,
    session,
    await ok(
      client.POST("/v1/projects/{project}/locations/{location}/endpoints", {
        params: { path: where(session) },
        body: { displayName: `${displayName}-endpoint`.slice(0, 128) },
      }),
    ),
  );
  const endpoint = String((created.response as { name?: string } | null)?.name ?? "");
  await finished(
    client,
    session,
    await ok(
      client.POST("/v1/projects/{project}/locations/{location}/endpoints/{endpoint_id}:deployModel", {
        params: { path: { ...where(session), endpoint_id: lastId(endpoint) } },
        body: { deployedModel: { model: model.replace(/@\d+$/, ""), displayName }, trafficSplit: { "0": 100 } },
      }),
    ),
  );
  return endpoint;
}

export async function undeployModel(client: Client, session: Session, endpoint: string, deployedModelId: string) {
  await finished(
    client,
    session,
    await ok(
      client.POST("/v1/projects/{project}/locations/{location}/endpoints/{endpoint_id}:undeployModel", {
        params: { path: { ...where(session), endpoint_id: lastId(endpoint) } },
        body: { deployedModelId },
      }),
    ),
  );
}
