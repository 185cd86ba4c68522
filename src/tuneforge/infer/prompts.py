"""Prompt rendering shared by serving and offline generation: a conversation (or a bare prompt) through the model's
own chat template, shaped by its saved serving rules, as token ids."""

from __future__ import annotations

from tuneforge import storage
from tuneforge.data.conversation import Conversation, Message, TextPart, apply_prompt_rules
from tuneforge.data.images import open_images
from tuneforge.data.tokenize import ChatEncoder
from tuneforge.errors import FailedPrecondition, InvalidArgument
from tuneforge.infer.engine import Deployment

IMAGE_MODEL = "meta/llama4@llama-4-scout-17b-16e-instruct"


def conversation_prompt(
    dep: Deployment, conversation: Conversation, access: storage.Access | None
) -> tuple[list[int], dict | None]:
    """(token ids, the image tensors or None) of a conversation that may hold images, rendered as at training; its
    gs:// images must be readable with ``access`` (the client's project, where the server has tenants)."""
    if not conversation.images:
        return conversation_ids(dep, conversation), None
    if dep.processor is None:
        raise InvalidArgument(
            f"the deployed model takes text only; send text parts, or deploy an image-text model ({IMAGE_MODEL})"
        )
    conversation = apply_prompt_rules(conversation, dep.prompt_rules)
    encoder = ChatEncoder(dep.tokenizer, chat_template=dep.chat_template, processor=dep.processor)
    images = open_images(conversation.images, access=access)
    return encoder.encode_prompt(conversation, images), encoder.image_inputs(conversation.images, images)


def conversation_ids(dep: Deployment, conversation: Conversation) -> list[int]:
    if not dep.chat_template:
        raise FailedPrecondition(
            "the deployed model has no chat template, so it cannot take a conversation; use "
            "predict with a raw prompt, or deploy a model tuned by tuneforge (its template is saved)"
        )
    conversation = apply_prompt_rules(conversation, dep.prompt_rules)
    return ChatEncoder(dep.tokenizer, chat_template=dep.chat_template).encode_prompt(conversation)


def prompt_ids(dep: Deployment, text: str) -> list[int]:
    """A bare prompt: one user turn through the chat template (as prompt/completion data is trained), or the raw
    text for a model without one."""
    if dep.chat_template:
        return conversation_ids(dep, Conversation([Message("user", (TextPart(text),))]))
    return dep.tokenizer(text)["input_ids"]


def check_length(dep: Deployment, ids: list[int], where: str) -> None:
    if len(ids) >= dep.context_len:
        raise InvalidArgument(
            f"{where} is {len(ids)} tokens, but the model's context is {dep.context_len} tokens "
            "(prompt plus answer); shorten it"
        )
