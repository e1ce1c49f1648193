"""ProGAN and StyleGAN (Karras et al. 2018, 2019) on the geneval family contract."""
