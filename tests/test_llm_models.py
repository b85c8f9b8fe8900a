"""Saved models reload as they were trained: weights and, above all, the tokenizer."""

from llm.models import load_tokenizer, save_tiny_model, tiny_tokenizer

TEXT = "What is 12 + 7? Answer: 19."


def test_saved_tiny_tokenizer_reloads_identically(tmp_path):
    directory = save_tiny_model(tmp_path / "tiny")
    reloaded, original = load_tokenizer(str(directory)), tiny_tokenizer()
    assert reloaded(TEXT)["input_ids"] == original(TEXT)["input_ids"]
    assert reloaded.eos_token == original.eos_token and reloaded.padding_side == "left"
    assert reloaded.chat_template == original.chat_template
