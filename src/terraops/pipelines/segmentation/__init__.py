"""Segmentation (U-Net): chips, training, sliding-window inference, vectors, scoring, card,
the real sample."""
