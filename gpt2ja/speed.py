"""Training speed as model FLOPs utilization (MFU): FLOPs a token of GPT-2 and the peak of the device; the order in
which PyTorch's fused attention tries its kernels."""

import contextlib

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

# Dense bf16 peak FLOP/s of one device, for MFU. Matched against torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12,
                   "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "RTX 4090": 165e12,
                   "RTX 3090": 71e12}


def flops_per_token(config):
    """6N + 12·L·d·T (the PaLM / nanoGPT estimate): N counts the parameters that take part in matrix
    products, the tied token embedding once and position embeddings not; the second term is attention."""
    d, L, T = config.n_embd, config.n_layer, config.n_positions
    per_layer = 12 * d * d + 13 * d  # attention (4d² + 4d) and MLP (8d² + 5d) weights and biases, 2 layer norms
    n = config.vocab_size * d + L * per_layer + 2 * d
    return 6 * n + 12 * L * d * T


def device_peak_flops():
    """The bf16 peak of this process's GPU, or None on the CPU or an unknown GPU."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


# --sdpa_backends names: the kernels of torch.nn.functional.scaled_dot_product_attention
SDPA_BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                 "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}


def sdpa_order(names):
    """The backends of a comma list of SDPA_BACKENDS names, in its order (None for None or ''); ValueError naming an
    unknown one."""
    if not names:
        return None
    order = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in order if name not in SDPA_BACKENDS]
    if unknown or not order:
        raise ValueError(f"--sdpa_backends {names!r} must be a comma list of {', '.join(SDPA_BACKENDS)} "
                         f"(unknown: {', '.join(unknown) or 'none given'}).")
    return [SDPA_BACKENDS[name] for name in order]


def attention_backends(names):
    """A context in which scaled_dot_product_attention tries the named backends in that order (only those);
    with None, PyTorch's own order. The setting is global to the process, so it is entered around each step."""
    return sdpa_kernel(sdpa_order(names), set_priority=True) if names else contextlib.nullcontext()
