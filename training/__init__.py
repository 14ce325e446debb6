"""Model training: tokenizer, token packing, presets, pretraining, SFT and DPO."""
