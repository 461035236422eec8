"""gpt2ja.speed: FLOPs a token and the device's peak, the two halves of MFU."""

from transformers import GPT2Config, GPT2LMHeadModel

from gpt2ja.speed import PEAK_BF16_FLOPS, device_peak_flops, flops_per_token


def test_flops_per_token_counts_gpt2_small():
    config = GPT2Config(vocab_size=32000, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    n = sum(p.numel() for p in GPT2LMHeadModel(config).parameters()) - 1024 * 768  # no position embeddings
    assert flops_per_token(config) == 6 * n + 12 * 12 * 768 * 1024


def test_the_specific_name_of_a_device_comes_before_its_family(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name, expected in (("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12),
                           ("NVIDIA A100-SXM4-80GB", 312e12), ("Some Future GPU", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda name=name: name)
        assert device_peak_flops() == expected, name
    assert all(flops > 1e13 for flops in PEAK_BF16_FLOPS.values())
