"""GAN reference trainers: one loop, pluggable losses, independent ingredients (see ``config.py`` for the
switches and presets, ``train.py`` for the loop, ``sampler.py`` for ``sample(num, seed, labels)``)."""
