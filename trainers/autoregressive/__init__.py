"""Reference autoregressive models (FVSBN, NADE, MADE, PixelCNN, Gated PixelCNN) with exact likelihoods."""
