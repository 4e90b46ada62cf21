"""train.loop: the one loop (callbacks after every iteration, in order) and the resume protocol."""

from __future__ import annotations

import torch

from redestyle.train.loop import train_loop


class Walk:
    """A toy Resumable: a random walk whose only state is its position and its random stream."""

    def __init__(self, seed: int = 0) -> None:
        self.step, self.x = 0, torch.zeros(3)
        self.rng = torch.Generator().manual_seed(seed)

    def train_step(self) -> dict[str, float]:
        self.x = self.x + torch.randn(3, generator=self.rng)
        self.step += 1
        return {"norm": float(self.x.norm())}

    def checkpoint(self) -> dict:
        return {"step": self.step, "x": self.x.clone(), "rng": self.rng.get_state()}

    def load(self, payload: dict) -> None:
        self.step, self.x = payload["step"], payload["x"].clone()
        self.rng.set_state(payload["rng"])


def test_callbacks_run_in_order_after_each_iteration_and_a_resume_is_exact():
    calls, saved = [], {}
    full = Walk()

    def record(done, losses):
        calls.append(("record", done, losses["norm"]))

    def save(done, losses):
        calls.append(("save", done))
        if done == 2:
            saved["payload"] = full.checkpoint()

    logged = train_loop(full, 4, [record, save])
    assert [c[:2] for c in calls] == [(n, d) for d in (1, 2, 3, 4) for n in ("record", "save")]
    assert [c[2] for c in calls if c[0] == "record"] == [row["norm"] for row in logged]
    assert train_loop(full, 4) == []  # already at the end

    resumed = Walk(seed=1)  # another stream: everything must come from the checkpoint
    resumed.load(saved["payload"])
    assert train_loop(resumed, 4, reduce=lambda losses: {k: 2 * v for k, v in losses.items()}) == [
        {"norm": 2 * row["norm"]} for row in logged[2:]]
    assert torch.equal(resumed.x, full.x)
