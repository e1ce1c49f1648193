"""VQ-VAE (van den Oord et al. 2017) with a Gated PixelCNN prior over its code grid."""
