"""AlexNet §5's SGD update rule, exactly.

    v <- momentum * v - weight_decay * lr * w - lr * dL/dw
    w <- w + v

``torch.optim.SGD`` keeps lr outside its momentum buffer (``w <- w - lr * (mu * b + g + wd * w)``): the same
while lr is constant, but after an lr drop the paper's velocity still carries the old lr's steps for a while,
PyTorch's does not. We follow the paper.
"""
from __future__ import annotations

import torch


class PaperSGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay in Krizhevsky et al.'s form (see module docstring)."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"bad optimiser settings lr={lr} momentum={momentum} weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            vs = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                vs.append(state["velocity"])
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            torch._foreach_mul_(vs, mu)                          # v = mu v
            torch._foreach_add_(vs, params, alpha=-wd * lr)      #   - wd lr w
            torch._foreach_add_(vs, grads, alpha=-lr)            #   - lr g
            torch._foreach_add_(params, vs)                      # w = w + v
        return loss
