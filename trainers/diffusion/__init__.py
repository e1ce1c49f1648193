"""Diffusion models (DDPM, Ho et al. 2020) on the family contract: ``trainers/diffusion/family.py``."""
