"""The distillation loss: a label at an action bound is a clipped command, so only the inside is wrong."""

from __future__ import annotations

import torch

from sim2real.student.optim import masked_mse, past_saturated_labels


def test_prediction_past_a_saturated_label_costs_nothing_but_inside_it_does():
    label = torch.tensor([[[1.0, -1.0, 0.5]]])  # (B=1, K=1, Da=3) env units: two saturated, one not
    target = label * 2.0  # normalized (std 0.5): the check reads the env-unit label, not the target
    pred = torch.tensor([[[3.0, -3.0, 3.0]]], requires_grad=True)  # past +1, past -1, past 0.5
    kept = past_saturated_labels(pred, target, label, -torch.ones(3), torch.ones(3))
    assert kept[0, 0, :2].tolist() == [2.0, -2.0]  # past the bound: the target itself, no error
    assert kept[0, 0, 2] == 3.0  # an unsaturated label keeps its error on both sides
    loss = masked_mse(kept, target, torch.ones(1, 1, dtype=torch.bool))
    loss.backward()
    assert pred.grad[0, 0, :2].tolist() == [0.0, 0.0] and pred.grad[0, 0, 2] > 0


def test_prediction_inside_a_saturated_label_keeps_its_full_error():
    label = torch.tensor([[[1.0, -1.0]]])
    pred = torch.tensor([[[0.2, -0.2]]])
    assert torch.equal(past_saturated_labels(pred, label, label, -torch.ones(2), torch.ones(2)), pred)


def test_saturation_is_judged_at_the_tasks_own_bounds():
    """Go2's actions lie in [-4, 4]: a label of 1 is an ordinary command there, a label of 4 is clipped."""
    label = torch.tensor([[[1.0, 4.0]]])
    pred = torch.tensor([[[9.0, 9.0]]])
    kept = past_saturated_labels(pred, label, label, torch.full((2,), -4.0), torch.full((2,), 4.0))
    assert kept[0, 0].tolist() == [9.0, 4.0]
