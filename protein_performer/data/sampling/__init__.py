"""Which examples form a batch: ``samplers`` (sharded, resumable batch samplers),
``token_budget`` (similar lengths under a padded-token budget), ``cluster_sampler`` over
``clusters`` (cluster TSVs), ``collate`` (padding a batch)."""
