"""What fine-tuning reads and leaves: the SFT and DPO rows, the training log."""
