"""lmvae.prompt_template: text around the soft prompt, named ("chat", "auto", "none") or given,
as token ids; the model puts it around the soft prompt and starts sentences from its last
token, and it survives saving."""

from __future__ import annotations

import pytest
import torch
from support import qwen2_tokenizer

from lmvae import LanguageVAE
from lmvae.config import VAEConfig
from lmvae.errors import ConfigError
from lmvae.evaluation import decoder_nll
from lmvae.prompt_template import INSTRUCTION, PLACEHOLDER, template_ids, template_text

CHAT = (
    "{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}"
)
TEXT = "Text: {latent}\nSame text:"


@pytest.fixture(scope="module")
def tok():
    return qwen2_tokenizer()


@pytest.fixture
def chat_tok(tok):
    tok.chat_template = CHAT
    yield tok
    tok.chat_template = None


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_chat_renders_the_tokenizers_template_around_a_request_to_repeat(chat_tok):
    text = template_text("chat", chat_tok)
    assert text == f"<|endoftext|>user\n{INSTRUCTION}{PLACEHOLDER}\n<|endoftext|>assistant\n"
    assert template_text("auto", chat_tok) == text


def test_auto_and_none_without_a_chat_template(tok):
    assert template_text("auto", tok) is None and template_ids("none", tok) is None
    with pytest.raises(ConfigError, match="needs a decoder tokenizer with a chat template"):
        template_text("chat", tok)


def test_ids_are_the_pieces_tokenised_and_the_suffix_last_token_starts_the_sentence(tok):
    ids = template_ids(TEXT, tok)
    suffix = _ids(tok, "\nSame text:")
    assert ids.prefix == _ids(tok, "Text: ")
    assert ids.suffix == suffix[:-1] and ids.start_id == suffix[-1]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("Text: nothing here", "exactly once"),
        ("{latent} and {latent}:", "exactly once"),
        ("Text: {latent}", "needs text after"),
    ],
)
def test_bad_templates_are_one_line_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        VAEConfig.create("e", "d", 8, decoder_injection="prompt", decoder_prompt_template=bad)


def test_a_template_needs_the_soft_prompt():
    with pytest.raises(ConfigError, match="needs decoder injection 'prompt'"):
        VAEConfig.create("e", "d", 8, decoder_injection="prefix", decoder_prompt_template=TEXT)
    # "auto" is the soft prompt's: with other injections it means no template.
    VAEConfig.create("e", "d", 8, decoder_injection="prefix", decoder_prompt_template="auto")


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae(
        "bert", "qwen2", decoder_injection="prompt", decoder_num_slots=3,
        decoder_prompt_template=TEXT,
    ).eval()  # fmt: skip


def test_the_model_reads_the_template_around_its_soft_prompt(vae):
    ids = template_ids(TEXT, vae.decoder_tokenizer)
    assert vae.decoder.num_slots == len(ids.prefix) + 3 + len(ids.suffix)
    assert vae.codec.start_id == ids.start_id != vae.codec.bos_id
    batch = vae.decoder_inputs(["a dog runs"])
    assert batch["input_ids"][0, 0] == ids.start_id
    z = torch.randn(2, vae.latent_size)
    prompt = vae.decoder.soft_prompt(z)
    embed = vae.decoder.lm.get_input_embeddings()
    torch.testing.assert_close(prompt[1, : len(ids.prefix)], embed(torch.tensor(ids.prefix)))
    torch.testing.assert_close(
        prompt[:, len(ids.prefix) : len(ids.prefix) + 3], vae.decoder.injector(z)[0]
    )


def test_decoding_starts_from_the_template_and_the_own_nll_from_bos(vae):
    assert len(vae.reconstruct(["a dog runs", "the cat sat on the mat"], max_new_tokens=5)) == 2
    # The decoder's own NLL stays the plain LM's [BOS] x [EOS], with nothing before it.
    nll, _ = decoder_nll(vae, ["a dog runs"])
    row = vae.codec.decoder_rows(["a dog runs"])[0]
    seq = torch.tensor([[vae.codec.bos_id, *row, vae.eos_id]])
    with torch.no_grad():
        logits = vae.decoder.lm(input_ids=seq).logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits.float(), seq[0, 1:], reduction="sum")
    torch.testing.assert_close(nll[0], expected, atol=1e-4, rtol=1e-4)


def test_the_template_survives_saving(vae, tmp_path):
    vae.save_pretrained(tmp_path / "m")
    again = LanguageVAE.from_pretrained(tmp_path / "m")
    assert again.config.decoder.prompt_template == TEXT
    assert again.codec.start_id == vae.codec.start_id
    assert torch.equal(again.decoder.template_prefix, vae.decoder.template_prefix)
