"""Pix2Pix (Isola et al. 2017): conditional GANs for paired image-to-image translation."""
