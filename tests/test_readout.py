"""The fused readout (training.fusedReadout): the readout and cross-entropy taken chunk by chunk give the loss
and gradients of logits -> cross-entropy, under muP's readout scale, with ignored targets, in any chunking, with
no gradients (evaluation) and under bf16 autocast; a sweep trained with it ends at the same losses."""

from __future__ import annotations

import pytest
import torch

from ff_plugins.gpt import GPT
from ff_plugins.losses import cross_entropy
from ff_trainer.readout import chunk_tokens, linear_cross_entropy, missing


def _model(parameterization: str):
    torch.manual_seed(0)
    plugin = GPT(300, parameterization, 16 if parameterization == "mup" else None)
    return plugin.build({"d_model": 32, "n_layers": 2, "n_heads": 2}, 16)


def _batch():
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randint(300, (3, 16), generator=generator), torch.randint(300, (3, 16), generator=generator)
    y[0, :5] = -100  # ignored targets count for nothing
    return x, y


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    return grads


@pytest.mark.parametrize("parameterization", ["standard", "mup"])
@pytest.mark.parametrize("chunk", [None, 7, 48])
def test_loss_and_gradients_equal_the_logits_path(parameterization, chunk):
    model, (x, y) = _model(parameterization), _batch()
    reference = cross_entropy(model(x), y)
    reference.backward()
    expected = _grads(model)
    weight, scale = model.readout()
    fused = linear_cross_entropy(model.features(x), weight, y, scale, chunk=chunk)
    (3 * fused).backward()  # the incoming gradient scales the stored ones (as 1/accumulation steps does)
    got = _grads(model)
    assert fused.item() == pytest.approx(reference.item(), rel=1e-6)
    for name, grad in expected.items():  # each parameter's largest difference, against its largest gradient
        assert (got[name] - 3 * grad).abs().max() <= 1e-5 * (3 * grad).abs().max(), name


def test_without_gradients_only_the_loss_is_computed():
    model, (x, y) = _model("standard"), _batch()
    with torch.no_grad():
        weight, scale = model.readout()
        fused = linear_cross_entropy(model.features(x), weight, y, scale, chunk=5)
        assert not fused.requires_grad
        assert fused.item() == pytest.approx(cross_entropy(model(x), y).item(), rel=1e-6)


def test_under_bf16_autocast_the_products_are_bf16_and_the_loss_close():
    """The GPU's mixed precision, here on the CPU: products in bf16, softmax and sums in fp32; gradients
    come back in the parameters' dtype."""
    model, (x, y) = _model("standard"), _batch()
    reference = cross_entropy(model(x), y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        weight, scale = model.readout()
        fused = linear_cross_entropy(model.features(x), weight, y, scale, chunk=8)
    fused.backward()
    assert fused.dtype == torch.float32 and fused.item() == pytest.approx(reference, rel=2e-2)
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())


def test_chunks_hold_about_the_hidden_states_worth_of_logits():
    assert chunk_tokens(32768, 768, 50304) == 32768 * 768 // 50304  # as many logits as hidden numbers
    assert chunk_tokens(8192, 768, 50304) == (1 << 24) // 50304  # and at least 16M logits per chunk
    assert chunk_tokens(100, 32, 256) == 100  # small: one chunk


def test_what_a_model_or_loss_lacks_is_named():
    assert missing(_model("standard"), cross_entropy) == []
    assert missing(torch.nn.Linear(2, 2), lambda out, y: out.sum()) == [
        "the model's features()", "the model's readout()",
        "a loss that is token cross-entropy (the built-in ff_plugins.losses:cross_entropy)"]


@pytest.mark.long
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_a_run_with_the_fused_readout_ends_at_the_same_losses(short_run, compiled):
    # evaluation in batches of the training shape: one shape fewer to compile
    plain = short_run(fusedReadout=False, compile=False, evalTokens=512)
    fused = short_run(fusedReadout=True, compile=compiled, evalTokens=512)
    assert fused == pytest.approx(plain, rel=1e-4 if compiled else 1e-5)
    assert fused[-2] < fused[0]
