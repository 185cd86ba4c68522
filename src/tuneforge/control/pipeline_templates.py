"""The pipelines tuneforge runs (contract §5): template URIs, their parameters, defaults and tasks, and the stand-in
template spec an air-gapped SDK downloads instead of the real one (``tuneforge.vertex_offline``)."""

from __future__ import annotations

from typing import Any

import yaml

_KFP = "https://us-kfp.pkg.dev/ml-pipeline/"
TEMPLATES = {
    _KFP + "large-language-model-pipelines/tune-large-model/v3.0.0": "tune-large-model",
    _KFP + "large-language-model-pipelines/tune-large-model/v2.0.0": "tune-large-model",
    _KFP + "large-language-model-pipelines/tune-large-chat-model/v3.0.0": "tune-large-chat-model",
    _KFP + "distillation/distillation/v1.0.0": "distillation",
}
DISTILLATION_TEMPLATE = _KFP + "distillation/distillation/v1.0.0"


# parameter -> kind (SPEC §3.5, §5.4; contract §5.3)
_COMMON = {
    "project": "str",
    "location": "region",
    "dataset_uri": "str",
    "dataset_name": "str",
    "model_display_name": "str",
    "train_steps": "int",
    "learning_rate": "float",
    "learning_rate_multiplier": "float",
    "evaluation_data_uri": "str",
    "evaluation_interval": "int",
    "enable_early_stopping": "bool",
    "enable_checkpoint_selection": "tri",
    "tensorboard_resource_id": "str",
    "accelerator_type": "accel",
    "max_context_length": "ctx",
    "encryption_spec_key_name": "str",
}
PARAMETERS = {
    "tune-large-model": {**_COMMON, "large_model_reference": "model"},
    "tune-large-chat-model": {**_COMMON, "large_model_reference": "model", "default_context": "str"},
    "distillation": {**_COMMON, "teacher_model_reference": "model", "student_model_reference": "model"},
}
REQUIRED = {
    "tune-large-model": ("large_model_reference",),
    "tune-large-chat-model": ("large_model_reference",),
    "distillation": ("teacher_model_reference", "student_model_reference"),
}
CHAT_EVALUATION = ("evaluation_data_uri", "evaluation_interval", "enable_early_stopping", "enable_checkpoint_selection")
DEFAULTS = {
    "train_steps": 300,
    "learning_rate_multiplier": 1.0,
    "evaluation_interval": 20,
    "enable_early_stopping": True,
    "accelerator_type": "GPU",
    "enable_checkpoint_selection": "default",
}


def upload_task(template: str) -> str:
    return "upload-model" if template == "distillation" else "upload-llm-model"


def deploy_task(template: str) -> str:
    return "deploy-model" if template == "distillation" else "deploy-llm-model"


def task_names(template: str, params: dict[str, Any]) -> list[str]:
    """The tasks a job of ``template`` runs, in order (the root task, named after the template, comes first)."""
    tasks = ["validate-data"]
    if template == "distillation":
        tasks.append("teacher-labelling")
    tasks.append("tune")
    if params.get("evaluation_data_uri"):
        tasks.append("evaluate")
    return [*tasks, upload_task(template), deploy_task(template)]


_TYPES = {"int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE", "bool": "BOOLEAN"}


def stand_in_template(uri: str) -> dict[str, Any] | None:
    """The stand-in pipeline spec for a supported template URI (None for others)."""
    template = TEMPLATES.get(uri.split("?", 1)[0].rstrip("/"))
    if template is None:
        return None
    parameters = {
        name: {"parameterType": _TYPES.get(kind, "STRING"), "isOptional": True}
        for name, kind in sorted(PARAMETERS[template].items())
    }
    return {
        "pipelineInfo": {"name": template, "description": f"tuneforge stand-in for {uri}"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "tuneforge",
        "root": {"inputDefinitions": {"parameters": parameters}, "dag": {"tasks": {}}},
        "components": {},
        "deploymentSpec": {"executors": {}},
    }


def template_yaml(uri: str) -> str | None:
    spec = stand_in_template(uri)
    return None if spec is None else yaml.safe_dump(spec, sort_keys=False)
