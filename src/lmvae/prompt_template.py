"""Text around the soft prompt: put a frozen instruct decoder in the mode where it copies.

A frozen SmolLM2-135M-Instruct gives a held-out WordNet gloss 74.8 nats with nothing before it,
and 4.9 nats after a chat turn that asks it to repeat that gloss (``benchmarks/
information_probes.py``): the model copies from its context when it is asked to, not
otherwise.  A template is text with one ``{latent}`` where the soft prompt made from z goes;
the decoder reads ``prefix, soft prompt, suffix`` and then the sentence.  The suffix's last
token starts the sentence in place of BOS (for a chat template, the newline after the
assistant's role), so training and decoding see exactly the sequence the model was tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from lmvae.errors import ConfigError

PLACEHOLDER = "{latent}"
#: Template name: the decoder tokenizer's own chat template around a request to repeat.
CHAT = "chat"
#: Template name: no text around the soft prompt, the sentence starts with BOS.
NONE = "none"
#: Template name: ``chat`` where the decoder tokenizer has a chat template, else ``none``.
AUTO = "auto"
INSTRUCTION = "Repeat this text exactly:\n"


@dataclass(frozen=True)
class TemplateIds:
    """A template as token ids: before the soft prompt, after it, and the token the sentence
    starts from (the suffix's last token, taken out of ``suffix``)."""

    prefix: list[int]
    suffix: list[int]
    start_id: int


def template_text(template: str, tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The template as text (None: no template).  ``chat`` renders the tokenizer's chat template
    for a user turn asking to repeat the placeholder, with the assistant's turn opened."""
    if template == AUTO:
        template = CHAT if getattr(tokenizer, "chat_template", None) else NONE
    if template == NONE:
        return None
    if template == CHAT:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "prompt template 'chat' needs a decoder tokenizer with a chat template; "
                f"give the text yourself, with {PLACEHOLDER} where the latent goes"
            )
        message = [{"role": "user", "content": INSTRUCTION + PLACEHOLDER}]
        return tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=False)
    return template


def check_template(template: str) -> None:
    """A named template, or text holding the placeholder exactly once with text after it."""
    if template in (AUTO, CHAT, NONE):
        return
    if template.count(PLACEHOLDER) != 1:
        raise ConfigError(
            f"prompt template must be {AUTO}, {CHAT}, {NONE} or text with {PLACEHOLDER} "
            f"exactly once, got {template!r}"
        )
    if not template.split(PLACEHOLDER)[1]:
        raise ConfigError(
            f"prompt template needs text after {PLACEHOLDER}: its last token starts the sentence"
        )


def template_ids(template: str, tokenizer: PreTrainedTokenizerBase) -> TemplateIds | None:
    """Tokenise a template (None when it names no text)."""
    check_template(template)
    text = template_text(template, tokenizer)
    if text is None:
        return None
    before, after = text.split(PLACEHOLDER)
    prefix = tokenizer(before, add_special_tokens=False)["input_ids"]
    suffix = tokenizer(after, add_special_tokens=False)["input_ids"]
    if not suffix:
        raise ConfigError(f"prompt template has no tokens after {PLACEHOLDER}")
    return TemplateIds(list(prefix), list(suffix[:-1]), int(suffix[-1]))
