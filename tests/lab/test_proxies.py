"""Trained tabular proxies are centred per prompt: the part of a BT-trained table the pairs do not identify (a
per-prompt constant) is removed, so a machine's rounding noise cannot move the lab's numbers."""

import torch

from rewardlab.evaluate.metrics import reward_variance
from rewardlab.lab import proxies
from rewardlab.lab.proxies import ProxySpec, centre_per_prompt, pairs_for, train_feature_rm
from rewardlab.lab.world import WorldConfig, make_world, standardize


class NoisyAdamW(torch.optim.AdamW):
    """AdamW on another CPU: the prompt-feature columns of a linear RM's gradient, exactly 0 in exact arithmetic, get
    rounding-sized noise (1e-9) — what a different summation order leaves of the chosen − rejected cancellation."""

    def __init__(self, params, *args, **kwargs):
        params = list(params)
        super().__init__(params, *args, **kwargs)
        self.weight = params[0]
        self.g = torch.Generator().manual_seed(123)

    def step(self, closure=None):
        grad = self.weight.grad
        grad[:, -4:] += 1e-9 * torch.randn(grad[:, -4:].shape, generator=self.g)
        return super().step(closure)


def _trained(world, pairs, monkeypatch, noisy: bool, centre: bool) -> torch.Tensor:
    monkeypatch.setattr(proxies.torch.optim, "AdamW", NoisyAdamW if noisy else torch.optim.AdamW)
    return train_feature_rm(world, pairs, hidden=0, seed=5, steps=100, centre=centre)


def test_rounding_noise_moves_raw_offsets_not_centred_tables(monkeypatch):
    world = make_world(WorldConfig(n_prompts=32, n_candidates=8), 1)
    pairs = pairs_for(world, ProxySpec("p", 300, 1.0, 0, seed=5), torch.Generator().manual_seed(5))
    raw, raw_noisy = (_trained(world, pairs, monkeypatch, n, centre=False) for n in (False, True))
    cen, cen_noisy = (_trained(world, pairs, monkeypatch, n, centre=True) for n in (False, True))
    # Raw: AdamW turns the 1e-9 noise into full-size steps on the prompt weights -> different per-prompt offsets
    offsets = (raw - raw_noisy).mean(-1)
    assert offsets.std() > 0.01  # vs < 1e-6 without the noise (below)
    # ... and so a different RV under global standardization (a number the lab tests)
    pi0 = world.policies["pi0"]
    ys = torch.multinomial(torch.softmax(pi0, -1), 8, replacement=True, generator=torch.Generator().manual_seed(0))
    rv = [reward_variance(t.gather(1, ys).numpy()) for t in (raw, raw_noisy, cen, cen_noisy)]
    assert abs(rv[0] - rv[1]) > 1e-3
    # Centred: the same table and the same RV, up to float32 rounding
    assert (cen - cen_noisy).abs().max() < 1e-4 * cen.abs().max()
    assert abs(rv[2] - rv[3]) < 1e-5
    # centring keeps every within-prompt difference of the raw table
    assert torch.allclose(cen, centre_per_prompt(raw), atol=1e-5)
    assert torch.allclose(cen.mean(-1), torch.zeros(32, dtype=cen.dtype), atol=1e-9)
    assert torch.allclose(standardize(cen, pi0), standardize(cen_noisy, pi0), atol=1e-4)
