"""gpt2ja.speed: FLOPs a token and the device's peak, the two halves of MFU."""

from transformers import GPT2Config, GPT2LMHeadModel

import pytest
import torch

from gpt2ja.speed import PEAK_BF16_FLOPS, attention_backends, device_peak_flops, flops_per_token, sdpa_order


def test_flops_per_token_counts_gpt2_small():
    config = GPT2Config(vocab_size=32000, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    n = sum(p.numel() for p in GPT2LMHeadModel(config).parameters()) - 1024 * 768  # no position embeddings
    assert flops_per_token(config) == 6 * n + 12 * 12 * 768 * 1024


def test_the_specific_name_of_a_device_comes_before_its_family(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name, expected in (("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12),
                           ("NVIDIA A100-SXM4-80GB", 312e12), ("Some Future GPU", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda name=name: name)
        assert device_peak_flops() == expected, name
    assert all(flops > 1e13 for flops in PEAK_BF16_FLOPS.values())


def test_the_attention_backends_are_tried_in_the_order_named():
    query = torch.randn(1, 2, 8, 4)
    default = torch._fused_sdp_choice(query, query, query, is_causal=True)  # PyTorch's order: flash on the CPU
    with attention_backends("math"):
        assert torch._fused_sdp_choice(query, query, query, is_causal=True) == int(sdpa_order("math")[0]) != default
    with attention_backends("cudnn,flash,efficient,math"):  # no cuDNN on the CPU: the next one
        assert torch._fused_sdp_choice(query, query, query, is_causal=True) == default
    with attention_backends(None):
        assert torch._fused_sdp_choice(query, query, query, is_causal=True) == default


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown: fast\)"):
        sdpa_order("flash, fast")
    assert sdpa_order("flash, math") == [torch.nn.attention.SDPBackend.FLASH_ATTENTION,
                                         torch.nn.attention.SDPBackend.MATH]
    assert sdpa_order("") is None and sdpa_order(None) is None
