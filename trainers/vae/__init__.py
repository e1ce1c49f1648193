"""Reference VAE (Gaussian latent; Bernoulli or discretised-logistic decoder) with ELBO and IWAE bounds."""
