// The create flows, one per documented Console flow (SPEC §6): their fields (the parameter tables of SPEC §2.5, §3.5,
// §4.3, §5.4, with the catalog's defaults as placeholders), the request each builds, and the same request as a
// google-genai / vertexai / REST / CLI snippet. A field left empty is not sent, so the server's default applies, and
// the preview shows what it resolved to.
import type { BaseModelInfo, Location, Model, Session } from "../api/client";
import { OPEN_MODEL_LABEL } from "../catalog";

export type Values = Record<string, string | boolean>;

export interface Choice {
  value: string;
  label: string;
}

export interface Context {
  session: Session;
  model?: BaseModelInfo; // the chosen base model
  models: BaseModelInfo[];
  registry: Model[]; // the project's tuned models (teachers, continued tuning)
  locations: Location[]; // the regions the server accepts jobs in
}

export interface Field {
  key: string;
  label: string;
  kind: "text" | "number" | "select" | "checkbox" | "model" | "dataset";
  help?: string;
  advanced?: boolean;
  required?: boolean;
  min?: number;
  step?: number;
  choices?: (ctx: Context) => Choice[];
  placeholder?: (ctx: Context) => string;
  shown?: (values: Values, ctx: Context) => boolean;
  initial?: string | boolean;
}

export interface Snippet {
  title: string;
  text: string;
}

export interface Flow {
  id: string;
  label: string;
  summary: string;
  api: "tuningJobs" | "pipelineJobs";
  purpose: string; // what its training data is for (dataset uploads and reports)
  models: (m: BaseModelInfo) => boolean; // which catalog entries its base model picker offers
  fields: Field[];
  body(values: Values, ctx: Context): Record<string, unknown>;
  snippets(values: Values, ctx: Context, body: Record<string, unknown>): Snippet[];
}

const ADAPTER = [1, 2, 4, 8, 16, 32];
const ADAPTER_NAMES: Record<number, string> = {
  1: "ONE",
  2: "TWO",
  4: "FOUR",
  8: "EIGHT",
  16: "SIXTEEN",
  32: "THIRTY_TWO",
};
const TEMPLATES: Record<string, string> = {
  "code-generation": "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-model/v3.0.0",
  "code-chat": "https://us-kfp.pkg.dev/ml-pipeline/large-language-model-pipelines/tune-large-chat-model/v3.0.0",
  "distillation-pipeline": "https://us-kfp.pkg.dev/ml-pipeline/distillation/distillation/v1.0.0",
};

const text = (v: Values, k: string) => (typeof v[k] === "string" ? (v[k] as string).trim() : "");
const num = (v: Values, k: string) => (text(v, k) === "" ? undefined : Number(text(v, k)));

/** An object without the keys whose value is undefined or an empty object (what is not set is not sent). */
function compact(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const inner = v && typeof v === "object" && !Array.isArray(v) ? compact(v as Record<string, unknown>) : v;
    if (
      inner !== undefined &&
      !(typeof inner === "object" && inner && !Array.isArray(inner) && !Object.keys(inner).length)
    )
      out[k] = inner;
  }
  return out;
}

const regions = (openOnly: boolean) => (ctx: Context) =>
  ctx.locations
    .filter((l) => !openOnly || l.labels?.[OPEN_MODEL_LABEL] === "true")
    .map((l) => ({ value: l.locationId, label: l.locationId }));
const modes = (ctx: Context): Choice[] =>
  [...(ctx.model?.modes ?? [])]
    .sort((a, b) => (a.tuningMode === "PEFT_ADAPTER" ? -1 : b.tuningMode === "PEFT_ADAPTER" ? 1 : 0)) // LoRA first
    .map((m) => ({
      value: m.tuningMode === "FULL" ? "TUNING_MODE_FULL" : "TUNING_MODE_PEFT_ADAPTER",
      label: `${m.tuningMode === "FULL" ? "Full" : "LoRA adapter"} (up to ${m.maxSeqLen.toLocaleString()} tokens per example)`,
    }));
const isLora = (v: Values, ctx: Context) =>
  v.tuningMode !== "TUNING_MODE_FULL" && (ctx.model?.modes ?? []).some((m) => m.tuningMode === "PEFT_ADAPTER");
const adapterSizes = (ctx: Context): Choice[] => [
  { value: "", label: `catalog default (${ctx.model?.adapterSize ?? "–"})` },
  ...ADAPTER.map((r) => ({ value: `ADAPTER_SIZE_${ADAPTER_NAMES[r]}`, label: String(r) })),
];

// -- fields shared by the flows ---------------------------------------------------------------------------------------

const displayName: Field = {
  key: "displayName",
  label: "Tuned model name",
  kind: "text",
  help: "At most 128 characters.",
};
const region = (openOnly: boolean): Field => ({
  key: "region",
  label: "Region",
  kind: "select",
  choices: regions(openOnly),
  help: "Where the job runs and the model is deployed.",
});
const baseModel: Field = { key: "baseModel", label: "Base model", kind: "model", required: true };
const training: Field = { key: "training", label: "Training data", kind: "dataset", required: true };
const validation: Field = { key: "validation", label: "Validation data (optional)", kind: "dataset" };
const tuningMode: Field = { key: "tuningMode", label: "Tuning mode", kind: "select", choices: modes };
const epochs: Field = {
  key: "epochs",
  label: "Epochs",
  kind: "number",
  min: 1,
  step: 1,
  advanced: true,
  placeholder: (c) => `catalog default ${c.model?.epochs ?? ""}`,
};
const adapterSize: Field = {
  key: "adapterSize",
  label: "Adapter size (LoRA rank)",
  kind: "select",
  advanced: true,
  choices: adapterSizes,
  shown: isLora,
};
const multiplier: Field = {
  key: "multiplier",
  label: "Learning rate multiplier",
  kind: "number",
  min: 0,
  step: 0.1,
  advanced: true,
  placeholder: () => "1 (the catalog's rate)",
};
const learningRate: Field = {
  key: "learningRate",
  label: "Learning rate (absolute, instead of the multiplier)",
  kind: "number",
  min: 0,
  step: 0.0001,
  advanced: true,
  placeholder: (c) => `catalog ${c.model?.modes?.[0]?.learningRate ?? ""}`,
};
const batchSize: Field = {
  key: "batchSize",
  label: "Batch size",
  kind: "number",
  min: 1,
  step: 1,
  advanced: true,
  placeholder: (c) => `catalog default ${c.model?.batchSize ?? ""}`,
};
const outputUri: Field = {
  key: "outputUri",
  label: "Output URI",
  kind: "text",
  advanced: true,
  placeholder: (c) => `gs://tuneforge-${c.session.project}/tuningJobs/JOB_ID`,
};
const evalInterval: Field = {
  key: "evalInterval",
  label: "Evaluation interval (steps)",
  kind: "number",
  min: 1,
  step: 1,
  advanced: true,
  placeholder: () => "a tenth of the steps",
  help: "How often the validation set is evaluated.",
};
const checkpointInterval: Field = {
  key: "checkpointInterval",
  label: "Checkpoint interval (steps)",
  kind: "number",
  min: 1,
  step: 1,
  advanced: true,
  placeholder: () => "once per epoch",
};

// -- tuningJobs -------------------------------------------------------------------------------------------------------

function hyperParameters(v: Values, ctx: Context, extra: Record<string, unknown> = {}) {
  return {
    epochCount: num(v, "epochs"),
    learningRateMultiplier: num(v, "multiplier"),
    adapterSize: isLora(v, ctx) ? text(v, "adapterSize") || undefined : undefined,
    ...extra,
  };
}

function tuningBody(spec: string, v: Values, ctx: Context, fields: Record<string, unknown>) {
  return compact({
    baseModel: text(v, "baseModel"),
    tunedModelDisplayName: text(v, "displayName") || undefined,
    outputUri: text(v, "outputUri") || undefined,
    [spec]: {
      tuningMode: ctx.model?.kind === "closed" ? undefined : text(v, "tuningMode") || undefined,
      validationDatasetUri: text(v, "validation") || undefined,
      ...fields,
    },
    reinforcementTuningSpec: {
      hyperParameters: { evaluateInterval: num(v, "evalInterval"), checkpointInterval: num(v, "checkpointInterval") },
    },
  });
}

function py(value: unknown): string {
  return typeof value === "string"
    ? JSON.stringify(value)
    : typeof value === "boolean"
      ? value
        ? "True"
        : "False"
      : String(value);
}

function genai(v: Values, ctx: Context, method: string | null, data: string, extra: Record<string, unknown>): string {
  const config = compact({
    method: method ?? undefined,
    tuned_model_display_name: text(v, "displayName") || undefined,
    epoch_count: num(v, "epochs"),
    learning_rate_multiplier: num(v, "multiplier"),
    adapter_size: isLora(v, ctx) ? text(v, "adapterSize") || undefined : undefined,
    ...extra,
  });
  const validationLine = text(v, "validation")
    ? `\n        validation_dataset=types.TuningValidationDataset(gcs_uri=${py(text(v, "validation"))}),`
    : "";
  const args = Object.entries(config)
    .map(([k, x]) => `\n        ${k}=${py(x)},`)
    .join("");
  return `from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

client = genai.Client(vertexai=True, project=${py(ctx.session.project)}, location=${py(text(v, "region") || ctx.session.location)},
                      credentials=Credentials(token=${py(ctx.session.apiKey ? "YOUR_API_KEY" : "any")}),
                      http_options=types.HttpOptions(base_url=${py(window.location.origin)}, api_version="v1"))
job = client.tunings.tune(
    base_model=${py(text(v, "baseModel"))},
    training_dataset=types.TuningDataset(gcs_uri=${py(data)}),
    config=types.CreateTuningJobConfig(${args}${validationLine}
    ),
)`;
}

function rest(ctx: Context, v: Values, collection: string, body: Record<string, unknown>): Snippet {
  const location = text(v, "region") || ctx.session.location;
  const auth = ctx.session.apiKey ? ' \\\n  -H "Authorization: Bearer $TUNEFORGE_API_KEY"' : "";
  return {
    title: "REST",
    text: `curl -X POST "${window.location.origin}/v1/projects/${ctx.session.project}/locations/${location}/${collection}"${auth} \\
  -H "Content-Type: application/json" \\
  -d '${JSON.stringify(body, null, 2).replaceAll("'", "'\\''")}'`,
  };
}

function cli(ctx: Context, v: Values, method: string, extra: string[] = []): Snippet {
  const mode = v.tuningMode === "TUNING_MODE_FULL" ? "full" : "lora";
  const flag = (name: string, value: string | number | undefined) =>
    value === undefined || value === "" ? [] : [`--${name} ${value}`];
  const rank = text(v, "adapterSize")
    ? ADAPTER.find((r) => text(v, "adapterSize").endsWith(ADAPTER_NAMES[r]))
    : undefined;
  const parts = [
    `tuneforge tune --server ${window.location.origin} --project ${ctx.session.project} --location ${text(v, "region") || ctx.session.location}`,
    `--model ${text(v, "baseModel")} --method ${method} --mode ${mode}`,
    `--train ${text(v, "training")}`,
    ...flag("validation", text(v, "validation")),
    `-o ${text(v, "outputUri") || `gs://tuneforge-${ctx.session.project}/cli/${text(v, "displayName") || "run"}`}`,
    ...flag("epochs", num(v, "epochs")),
    ...flag("learning-rate-multiplier", num(v, "multiplier")),
    ...flag("adapter-size", isLora(v, ctx) ? rank : undefined),
    ...extra,
  ];
  return { title: "CLI", text: parts.join(" \\\n    ") };
}

const openSft: Flow = {
  id: "open-sft",
  label: "Open model: supervised tuning",
  summary:
    "LoRA or full tuning of an open model (Llama, Gemma, Qwen) on chat, GenerateContent or prompt/completion lines.",
  api: "tuningJobs",
  purpose: "supervised",
  models: (m) => m.kind === "open",
  fields: [
    baseModel,
    displayName,
    region(true),
    tuningMode,
    training,
    validation,
    epochs,
    adapterSize,
    learningRate,
    multiplier,
    batchSize,
    evalInterval,
    checkpointInterval,
    outputUri,
  ],
  body: (v, ctx) =>
    tuningBody("supervisedTuningSpec", v, ctx, {
      trainingDatasetUri: text(v, "training"),
      hyperParameters: hyperParameters(v, ctx, {
        learningRate: num(v, "learningRate"),
        batchSize: num(v, "batchSize"),
      }),
    }),
  snippets: (v, ctx, body) => [
    { title: "google-genai", text: genai(v, ctx, null, text(v, "training"), {}) },
    rest(ctx, v, "tuningJobs", body),
    cli(ctx, v, "supervised", [
      ...(num(v, "batchSize") ? [`--batch-size ${num(v, "batchSize")}`] : []),
      ...(num(v, "learningRate") ? [`--learning-rate ${num(v, "learningRate")}`] : []),
    ]),
  ],
};

const gemini: Flow = {
  id: "gemini",
  label: "Gemini: supervised tuning",
  summary:
    "Vertex AI Studio's flow for Gemini ids; each runs on the open model the operator maps it to (dev mode: a stand-in).",
  api: "tuningJobs",
  purpose: "supervised",
  models: (m) => m.kind === "closed" && m.id.startsWith("gemini"),
  fields: [
    baseModel,
    displayName,
    region(false),
    training,
    validation,
    { ...epochs, label: "Number of epochs" },
    { ...adapterSize, shown: () => true },
    multiplier,
  ],
  body: (v, ctx) =>
    tuningBody("supervisedTuningSpec", v, ctx, {
      trainingDatasetUri: text(v, "training"),
      hyperParameters: {
        epochCount: num(v, "epochs"),
        learningRateMultiplier: num(v, "multiplier"),
        adapterSize: text(v, "adapterSize") || undefined,
      },
    }),
  snippets: (v, ctx, body) => [
    { title: "google-genai", text: genai(v, ctx, null, text(v, "training"), {}) },
    rest(ctx, v, "tuningJobs", body),
  ],
};

const preference: Flow = {
  id: "preference",
  label: "Preference tuning (DPO)",
  summary:
    "Teach a model to prefer each line's preferred completion over the other (google-genai's PREFERENCE_TUNING).",
  api: "tuningJobs",
  purpose: "preference",
  models: () => true,
  fields: [
    baseModel,
    displayName,
    region(false),
    tuningMode,
    training,
    validation,
    epochs,
    adapterSize,
    multiplier,
    {
      key: "beta",
      label: "Beta",
      kind: "number",
      min: 0,
      step: 0.05,
      advanced: true,
      placeholder: (c) => `catalog default ${c.model?.beta ?? 0.1}`,
      help: "How far the model may move from where it started.",
    },
    evalInterval,
    checkpointInterval,
    outputUri,
  ],
  body: (v, ctx) =>
    tuningBody("preferenceOptimizationSpec", v, ctx, {
      trainingDatasetUri: text(v, "training"),
      hyperParameters: hyperParameters(v, ctx, { beta: num(v, "beta") }),
    }),
  snippets: (v, ctx, body) => [
    { title: "google-genai", text: genai(v, ctx, "PREFERENCE_TUNING", text(v, "training"), { beta: num(v, "beta") }) },
    rest(ctx, v, "tuningJobs", body),
    cli(ctx, v, "preference", num(v, "beta") ? [`--beta ${num(v, "beta")}`] : []),
  ],
};

const teachers = (ctx: Context): Choice[] => [
  { value: "", label: "Choose a teacher" },
  ...ctx.models.map((m) => ({ value: `catalog:${m.id}`, label: `${m.id}${m.standIn ? " (dev stand-in)" : ""}` })),
  ...ctx.registry.map((m) => ({ value: `model:${m.name.replace(/@\d+$/, "")}`, label: `tuned: ${m.displayName}` })),
];

const distillation: Flow = {
  id: "distillation",
  label: "Distillation (tuningJobs)",
  summary: "A teacher labels and explains the prompts; the student learns both (google-genai's DISTILLATION).",
  api: "tuningJobs",
  purpose: "distillation",
  models: () => true,
  fields: [
    { ...baseModel, label: "Student model" },
    { key: "teacher", label: "Teacher model", kind: "select", required: true, choices: teachers },
    displayName,
    region(false),
    tuningMode,
    { ...training, label: "Prompt dataset" },
    validation,
    epochs,
    adapterSize,
    multiplier,
    {
      key: "rationaleWeight",
      label: "Rationale loss weight",
      kind: "number",
      min: 0,
      step: 0.1,
      advanced: true,
      placeholder: () => "0.5",
    },
    evalInterval,
    outputUri,
  ],
  body: (v, ctx) => {
    const teacher = text(v, "teacher");
    return tuningBody("distillationSpec", v, ctx, {
      promptDatasetUri: text(v, "training"),
      baseTeacherModel: teacher.startsWith("catalog:") ? teacher.slice(8) : undefined,
      tunedTeacherModelSource: teacher.startsWith("model:") ? teacher.slice(6) : undefined,
      hyperParameters: hyperParameters(v, ctx, { sftLossWeightMultiplier: num(v, "rationaleWeight") }),
    });
  },
  snippets: (v, ctx, body) => {
    const teacher = text(v, "teacher");
    const which = teacher.startsWith("model:")
      ? { tuned_teacher_model_source: teacher.slice(6) }
      : { base_teacher_model: teacher.slice(8) };
    return [
      { title: "google-genai", text: genai(v, ctx, "DISTILLATION", text(v, "training"), which) },
      rest(ctx, v, "tuningJobs", body),
    ];
  },
};

// -- pipelineJobs -----------------------------------------------------------------------------------------------------

const steps: Field = {
  key: "train_steps",
  label: "Training steps",
  kind: "number",
  min: 1,
  step: 1,
  advanced: true,
  placeholder: () => "300",
};
const pipelineFields: Field[] = [
  steps,
  { ...multiplier, key: "learning_rate_multiplier" },
  {
    key: "accelerator_type",
    label: "Accelerator type",
    kind: "select",
    advanced: true,
    choices: () => [
      { value: "", label: "GPU (default)" },
      { value: "GPU", label: "GPU" },
      { value: "TPU", label: "TPU" },
    ],
  },
  { key: "tensorboard_resource_id", label: "TensorBoard instance", kind: "text", advanced: true },
  {
    key: "encryption_spec_key_name",
    label: "Encryption key (CMEK)",
    kind: "text",
    advanced: true,
    placeholder: () => "Google-managed",
  },
  {
    key: "outputDirectory",
    label: "Output directory",
    kind: "text",
    advanced: true,
    placeholder: (c) => `gs://tuneforge-${c.session.project}/pipelineJobs`,
  },
];
const evaluation: Field[] = [
  { key: "evaluation", label: "Evaluation dataset (10–250 examples, optional)", kind: "dataset" },
  {
    key: "evaluation_interval",
    label: "Evaluation interval (steps)",
    kind: "number",
    min: 1,
    step: 1,
    advanced: true,
    placeholder: () => "20",
    shown: (v) => !!text(v, "evaluation"),
  },
  {
    key: "enable_early_stopping",
    label: "Enable early stopping",
    kind: "checkbox",
    advanced: true,
    initial: true,
    shown: (v) => !!text(v, "evaluation"),
  },
  {
    key: "enable_checkpoint_selection",
    label: "Checkpoint selection",
    kind: "select",
    advanced: true,
    shown: (v) => !!text(v, "evaluation"),
    choices: () => [
      { value: "default", label: "Default (best with evaluation)" },
      { value: "true", label: "Best checkpoint" },
      { value: "false", label: "Final checkpoint" },
    ],
  },
];

function pipelineBody(flow: string, v: Values, model: Record<string, unknown>) {
  const hasEval = !!text(v, "evaluation");
  return compact({
    displayName: text(v, "displayName") || undefined,
    templateUri: TEMPLATES[flow],
    runtimeConfig: {
      gcsOutputDirectory: text(v, "outputDirectory") || undefined,
      parameterValues: {
        ...model,
        location: text(v, "region") || undefined,
        model_display_name: text(v, "displayName") || undefined,
        dataset_uri: text(v, "training"),
        train_steps: num(v, "train_steps"),
        learning_rate_multiplier: num(v, "learning_rate_multiplier"),
        accelerator_type: text(v, "accelerator_type") || undefined,
        tensorboard_resource_id: text(v, "tensorboard_resource_id") || undefined,
        encryption_spec_key_name: text(v, "encryption_spec_key_name") || undefined,
        evaluation_data_uri: hasEval ? text(v, "evaluation") : undefined,
        evaluation_interval: hasEval ? num(v, "evaluation_interval") : undefined,
        enable_early_stopping: hasEval ? v.enable_early_stopping !== false : undefined,
        enable_checkpoint_selection: hasEval ? text(v, "enable_checkpoint_selection") || undefined : undefined,
        default_context: text(v, "default_context") || undefined,
      },
    },
  });
}

function vertexai(ctx: Context, v: Values, call: string): Snippet {
  return {
    title: "vertexai SDK",
    text: `import vertexai, google.auth.credentials
from tuneforge import vertex_offline
vertex_offline.install(${py(window.location.origin)})
vertexai.init(project=${py(ctx.session.project)}, location=${py(text(v, "region") || ctx.session.location)}, api_endpoint=${py(window.location.origin)},
              api_transport="rest", credentials=google.auth.credentials.AnonymousCredentials())
${call}`,
  };
}

const codeArgs = (v: Values) =>
  [
    `training_data=${py(text(v, "training"))}`,
    `train_steps=${num(v, "train_steps") ?? 300}`,
    `tuning_job_location=${py(text(v, "region") || "us-central1")}`,
    `tuned_model_location=${py(text(v, "region") || "us-central1")}`,
    ...(text(v, "accelerator_type") ? [`accelerator_type=${py(text(v, "accelerator_type"))}`] : []),
    ...(num(v, "learning_rate_multiplier") ? [`learning_rate_multiplier=${num(v, "learning_rate_multiplier")}`] : []),
  ].join(",\n    ");

const codeModels = (stem: string) => (m: BaseModelInfo) => m.kind === "closed" && m.id.startsWith(stem);

const codeGeneration: Flow = {
  id: "code-generation",
  label: "Code generation pipeline",
  summary:
    "Vertex AI Studio's supervised tuning of a code model (the tune-large-model pipeline), input_text/output_text lines.",
  api: "pipelineJobs",
  purpose: "code-generation",
  models: codeModels("code-bison"),
  fields: [baseModel, displayName, region(false), training, ...evaluation, ...pipelineFields],
  body: (v) => pipelineBody("code-generation", v, { large_model_reference: text(v, "baseModel") }),
  snippets: (v, ctx, body) => [
    vertexai(
      ctx,
      v,
      `from vertexai.language_models import CodeGenerationModel
job = CodeGenerationModel.from_pretrained(${py(text(v, "baseModel"))}).tune_model(
    ${codeArgs(v)})`,
    ),
    rest(ctx, v, "pipelineJobs", body),
  ],
};

const codeChat: Flow = {
  id: "code-chat",
  label: "Code chat pipeline",
  summary:
    "Tuning of a code chat model (the tune-large-chat-model pipeline) on messages lines with an optional context.",
  api: "pipelineJobs",
  purpose: "code-chat",
  models: codeModels("codechat-bison"),
  fields: [
    baseModel,
    displayName,
    region(false),
    training,
    {
      key: "default_context",
      label: "Default context",
      kind: "text",
      advanced: true,
      help: "The context of lines that have none.",
    },
    ...pipelineFields,
  ],
  body: (v) => pipelineBody("code-chat", v, { large_model_reference: text(v, "baseModel") }),
  snippets: (v, ctx, body) => [
    vertexai(
      ctx,
      v,
      `from vertexai.language_models import CodeChatModel
job = CodeChatModel.from_pretrained(${py(text(v, "baseModel"))}).tune_model(
    ${codeArgs(v)})`,
    ),
    rest(ctx, v, "pipelineJobs", body),
  ],
};

const distillationPipeline: Flow = {
  id: "distillation-pipeline",
  label: "Distillation pipeline",
  summary: "Vertex AI Studio's Create distilled model: a teacher model's rationales train a smaller student.",
  api: "pipelineJobs",
  purpose: "distillation",
  models: (m) => m.kind === "closed",
  fields: [
    { ...baseModel, label: "Student model" },
    {
      key: "teacher",
      label: "Teacher model",
      kind: "select",
      required: true,
      choices: (c) => [
        { value: "", label: "Choose a teacher" },
        ...c.models.filter((m) => m.kind === "closed").map((m) => ({ value: m.id, label: m.id })),
      ],
    },
    { ...displayName, label: "Model name" },
    region(false),
    training,
    ...evaluation,
    ...pipelineFields,
  ],
  body: (v) =>
    pipelineBody("distillation-pipeline", v, {
      student_model_reference: text(v, "baseModel"),
      teacher_model_reference: text(v, "teacher"),
    }),
  snippets: (v, ctx, body) => [
    vertexai(
      ctx,
      v,
      `from vertexai.preview.language_models import TextGenerationModel
TextGenerationModel.from_pretrained(${py(text(v, "baseModel"))}).distill_from(
    dataset=${py(text(v, "training"))}, teacher_model=${py(text(v, "teacher"))}, train_steps=${num(v, "train_steps") ?? 300})`,
    ),
    rest(ctx, v, "pipelineJobs", body),
  ],
};

export const FLOWS: Flow[] = [
  openSft,
  gemini,
  preference,
  distillation,
  codeGeneration,
  codeChat,
  distillationPipeline,
];
