// Chat with a deployed model, streamed (streamGenerateContent, server-sent events), with a system instruction and the
// sampling settings; optionally the same prompt to the base model it was tuned from, side by side.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { apiClient, errorText, lastId, ok, where, type Client, type Content, type Session } from "../api/client";
import { ErrorNote } from "../components/bits";
import { usePolling } from "../hooks";
import { go, links } from "../route";

interface Turn {
  role: "user" | "model";
  text: string;
}
interface Settings {
  system: string;
  temperature: number;
  topP: number;
  topK: number;
  maxOutputTokens: number;
}
type Target = { kind: "endpoint"; id: string } | { kind: "publisher"; publisher: string; model: string };

/** Send ``turns`` and call ``onText`` with each new piece of the answer as it streams in. */
async function stream(
  client: Client,
  session: Session,
  target: Target,
  turns: Turn[],
  s: Settings,
  onText: (t: string) => void,
) {
  const body = {
    contents: turns.map((t): Content => ({ role: t.role, parts: [{ text: t.text }] })),
    systemInstruction: s.system ? { parts: [{ text: s.system }] } : undefined,
    generationConfig: { temperature: s.temperature, topP: s.topP, topK: s.topK, maxOutputTokens: s.maxOutputTokens },
  };
  const options = { body, parseAs: "stream" as const };
  const { data, error, response } =
    target.kind === "endpoint"
      ? await client.POST("/v1/projects/{project}/locations/{location}/endpoints/{endpoint_id}:streamGenerateContent", {
          ...options,
          params: { path: { ...where(session), endpoint_id: target.id }, query: { alt: "sse" } },
        })
      : await client.POST(
          "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:streamGenerateContent",
          {
            ...options,
            params: {
              path: { ...where(session), publisher: target.publisher, model: target.model },
              query: { alt: "sse" },
            },
          },
        );
  if (!response.ok || !data) {
    const message = (error as { error?: { message?: string } } | undefined)?.error?.message;
    throw new Error(`${response.status}: ${message ?? response.statusText}`);
  }
  const reader = (data as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder(); // stream mode: a character split across chunks is decoded whole
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const events = buffer.split(/\r\n\r\n|\n\n|\r\r/); // SSE lines end in CRLF, LF or CR; a blank line ends an event
    buffer = events.pop() ?? "";
    for (const event of events) {
      const line = event.split(/\r\n|\n|\r/).find((l) => l.startsWith("data: "));
      if (!line) continue;
      const chunk = JSON.parse(line.slice(6)) as { candidates?: { content?: Content }[] };
      const parts = chunk.candidates?.[0]?.content?.parts ?? [];
      onText(parts.map((p) => p.text ?? "").join(""));
    }
  }
}

function publisherTarget(name: string | undefined): Target | null {
  const m = /^publishers\/([^/]+)\/models\/(.+)$/.exec(name ?? "");
  return m ? { kind: "publisher", publisher: m[1], model: m[2] } : null;
}

export function PlaygroundPage({ session, endpoint }: { session: Session; endpoint: string }) {
  const client = useMemo(() => apiClient(session), [session]);
  const endpoints = usePolling(
    () => ok(client.GET("/v1/projects/{project}/locations/{location}/endpoints", { params: { path: where(session) } })),
    [client],
    0,
  );
  const live = (endpoints.data?.endpoints ?? []).filter((e) => (e.deployedModels ?? []).length);
  const chosen = live.find((e) => e.name === endpoint) ?? (endpoint ? undefined : live[0]);
  const deployed = chosen?.deployedModels?.[0];
  const [base, setBase] = useState<string | null>(null);
  useEffect(() => {
    setBase(null);
    if (!deployed?.model) return;
    ok(
      client.GET("/v1/projects/{project}/locations/{location}/models/{model_id}", {
        params: { path: { ...where(session), model_id: lastId(deployed.model) } },
      }),
    )
      .then((m) => setBase(m.baseModelSource?.modelGardenSource.publicModelName ?? null))
      .catch(() => setBase(null));
  }, [client, deployed?.model]);

  return (
    <section aria-labelledby="playground-heading">
      <h2 id="playground-heading">Playground</h2>
      <ErrorNote error={endpoints.error} />
      <label className="inline">
        Endpoint
        <select value={chosen?.name ?? ""} onChange={(e) => go(links.playground(e.target.value))}>
          {!chosen && <option value="">Choose an endpoint</option>}
          {live.map((e) => (
            <option key={e.name} value={e.name ?? ""}>
              {e.displayName} ({e.deployedModels?.[0]?.displayName})
            </option>
          ))}
        </select>
      </label>
      {endpoints.data && live.length === 0 && (
        <p>No endpoint has a deployed model yet: deploy one from a finished job.</p>
      )}
      {endpoint && endpoints.data && !chosen && <p className="error">{endpoint} has no deployed model here.</p>}
      {chosen && (
        <Chat
          key={chosen.name}
          session={session}
          endpointId={lastId(chosen.name)}
          title={deployed?.displayName ?? ""}
          base={base}
        />
      )}
    </section>
  );
}

function Chat({
  session,
  endpointId,
  title,
  base,
}: {
  session: Session;
  endpointId: string;
  title: string;
  base: string | null;
}) {
  const client = useMemo(() => apiClient(session), [session]);
  const [settings, setSettings] = useState<Settings>({
    system: "",
    temperature: 0,
    topP: 1,
    topK: 0,
    maxOutputTokens: 64,
  });
  const [withBase, setWithBase] = useState(false);
  const [message, setMessage] = useState("");
  const [panes, setPanes] = useState<Record<string, Turn[]>>({ tuned: [], base: [] });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const baseTarget = publisherTarget(base ?? undefined);

  async function send(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (!message.trim()) return;
    const targets: [string, Target][] = [["tuned", { kind: "endpoint", id: endpointId }]];
    if (withBase && baseTarget) targets.push(["base", baseTarget]);
    setBusy(true);
    setError(null);
    const asked = message;
    setMessage("");
    try {
      await Promise.all(
        targets.map(async ([pane, target]) => {
          const history = [...panes[pane], { role: "user" as const, text: asked }];
          setPanes((old) => ({ ...old, [pane]: [...history, { role: "model", text: "" }] }));
          await stream(client, session, target, history, settings, (piece) =>
            setPanes((old) => {
              const turns = [...old[pane]];
              turns[turns.length - 1] = { role: "model", text: turns[turns.length - 1].text + piece };
              return { ...old, [pane]: turns };
            }),
          );
        }),
      );
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  const number = (key: keyof Settings) => (e: { target: { value: string } }) =>
    setSettings({ ...settings, [key]: Number(e.target.value) });
  return (
    <>
      <fieldset className="settings">
        <legend>Settings</legend>
        <label className="wide">
          System instruction
          <textarea
            value={settings.system}
            onChange={(e) => setSettings({ ...settings, system: e.target.value })}
            rows={2}
          />
        </label>
        <label>
          Temperature
          <input
            type="number"
            min={0}
            max={2}
            step={0.1}
            value={settings.temperature}
            onChange={number("temperature")}
          />
        </label>
        <label>
          Top-p
          <input type="number" min={0} max={1} step={0.05} value={settings.topP} onChange={number("topP")} />
        </label>
        <label>
          Top-k (0: off)
          <input type="number" min={0} step={1} value={settings.topK} onChange={number("topK")} />
        </label>
        <label>
          Max output tokens
          <input type="number" min={1} step={1} value={settings.maxOutputTokens} onChange={number("maxOutputTokens")} />
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={withBase}
            disabled={!baseTarget}
            onChange={(e) => setWithBase(e.target.checked)}
          />
          Also ask the base model {base ? `(${base})` : "(unknown for this model)"}
        </label>
      </fieldset>
      <div className={withBase ? "panes two" : "panes"}>
        <Pane title={`Tuned: ${title}`} turns={panes.tuned} />
        {withBase && <Pane title={`Base: ${base}`} turns={panes.base} />}
      </div>
      <ErrorNote error={error} />
      <form className="ask" onSubmit={send} aria-label="Send a message">
        <label className="wide">
          Message
          <textarea value={message} onChange={(e) => setMessage(e.target.value)} rows={2} />
        </label>
        <button type="submit" className="primary" disabled={busy || !message.trim()}>
          {busy ? "Answering…" : "Send"}
        </button>
        <button type="button" onClick={() => setPanes({ tuned: [], base: [] })} disabled={busy}>
          New conversation
        </button>
      </form>
    </>
  );
}

function Pane({ title, turns }: { title: string; turns: Turn[] }) {
  return (
    <section className="pane" aria-label={title}>
      <h3>{title}</h3>
      <ol className="turns" aria-live="polite">
        {turns.map((t, i) => (
          <li key={i} className={t.role}>
            <span className="who">{t.role === "user" ? "You" : "Model"}</span> <span className="text">{t.text}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
