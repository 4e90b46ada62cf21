"""Networks of the StyleGAN family, one module per family, official state-dict keys."""
