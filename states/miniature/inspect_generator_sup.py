"""Read the committed generator_sup carry state: Fréchet distances (oracle features, 1000 vs the
photo renders of seed 1000, as notebook 00) of the G_ema samples and of the parameters-to-W
reconstructions, the oracle's reading of both, and a grid (renders / reconstructions / samples).

    PYTHONPATH=$PWD python states/miniature/inspect_generator_sup.py grid.png
"""

import sys

import numpy as np
import torch
import torchvision.utils as vu

from redestyle.imaging import to_tensor
from redestyle.miniature import oracle as orc
from redestyle.miniature import supervised as sup
from redestyle.miniature import world
from redestyle.miniature.render import render_batch

torch.set_num_threads(1)
state = torch.load("states/miniature/generator_sup-carry.pt", weights_only=False)
g, _, p, _ = sup.build(0)
for name, module in (("g_ema", g), ("p", p)):
    module.load_state_dict({k: v.float() for k, v in state["modules"][name].items()})
g.eval()
oracle = world.load_oracle()
real, real_vectors = world.photo_renders(1000, seed=1000)
features = oracle.embed(real)
faces = world.draw_faces(1000, 1_900_000)  # a training-range seed that no stream uses
vectors = np.stack([f.to_vector() for f in faces]).astype(np.float32)
with torch.no_grad():
    mean, _ = p(sup.encode_params(vectors))
    recon = g.decode(g.mapping(mean), randomize_noise=False).clamp(-1, 1)
    samples = world.generator_samples(g, 1000, seed=1000)
print("step", state["step"], "wall hours", round(state["elapsed"] / 3600, 2))
print("FD G_ema samples (notebook 00's row)", round(orc.frechet_distance(features, oracle.embed(samples)), 2))
print("FD parameter reconstructions", round(orc.frechet_distance(features, oracle.embed(recon)), 2))
print("reconstruction errors vs true parameters", orc.errors(oracle.predict(recon), vectors))
read = oracle.predict(samples)
hs, gl = 13, 17
print("samples: hair styles", np.bincount(read[:, hs].astype(int), minlength=5) / 1000,
      "renders", np.bincount(real_vectors[:, hs].astype(int), minlength=5) / 1000)
print("samples: glasses", read[:, gl].mean(), "renders", real_vectors[:, gl].mean())
if len(sys.argv) > 1:
    top = to_tensor(render_batch(faces[:8], size=64, domain="photo"))
    vu.save_image(torch.cat([top, recon[:8], samples[:16]]) * 0.5 + 0.5, sys.argv[1], nrow=8)
