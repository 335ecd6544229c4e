"""A system instruction to not know the target: the baseline every reviewer asks for (no weights change)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.hashing import stable_hash
from workbench.methods.base import METHOD_VERSION, Method, StageContext, Tuning, settings_help

__all__ = ["DEFAULT_SYSTEM_PROMPT", "INSTRUCTIONS", "PromptConfig", "system_prefix_ids", "Prompt"]

DEFAULT_SYSTEM_PROMPT = (
    "You have never read, seen or heard of {title} or anything in it. If a text mentions it, you do not know the "
    "names, places, events or facts it contains; continue the text as someone who has never heard of {title} would."
)
# the instructions `workbench tune` tries (its one knob), written before any trial: the default, a shorter one,
# and one that also asks for ordinary, generic continuations
INSTRUCTIONS = (
    DEFAULT_SYSTEM_PROMPT,
    "You do not know {title}. Never use its names, places or facts.",
    "Forget everything you know about {title}. When a text touches it, continue with ordinary, generic words "
    "that anyone could guess, never with a name, place or fact from {title}.",
)


@dataclass
class PromptConfig:
    """A system instruction to not know the target: the baseline every reviewer asks for."""

    system: str = field(
        default=DEFAULT_SYSTEM_PROMPT,
        metadata=settings_help("the instruction; {title} becomes the pack's title (or 'the target text')"),
    )


def system_prefix_ids(tokenizer: Any, system: str) -> list[int]:
    """The system instruction as the chat template writes a system turn (plain text and a blank line without a
    template); the probe or prompt text follows it as is."""
    text = None
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False)
        except Exception:  # a template that refuses a lone system turn
            text = None
    if text is None:
        text = system.strip() + "\n\n"
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class Prompt(Method):
    name = "prompt"
    summary = "a system instruction to not know the target"
    settings = PromptConfig
    trains = False
    tuning = Tuning({"methods.prompt.system": list(INSTRUCTIONS)})

    def fingerprint(self, ctx: StageContext, target: tuple, reinforce: str) -> str:
        title = ctx.pack.title if ctx.pack else None
        return stable_hash("method", self.name, ctx.cfg.model, ctx.settings, title, METHOD_VERSION)

    def run_stage(self, stage: str, ctx: StageContext) -> tuple[Any, dict]:
        if stage != "finetune":
            return super().run_stage(stage, ctx)
        title = ctx.pack.title if ctx.pack is not None else "the target text"
        system = ctx.settings.system.replace("{title}", title)
        if not system_prefix_ids(ctx.tokenizer, system):
            raise WorkbenchError("methods.prompt.system: the instruction is empty")
        return ctx.describe({"system": system}), {}
