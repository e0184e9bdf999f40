"""Neural models: audio encoders, the face decoder, the head-pose VQ-VAE + prior, checkpoints.

Import from the submodules; this package needs torch (the add-on never imports it).
"""
