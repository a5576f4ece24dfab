"""The extraction engine: batching, hooks, the latent cache, memory planning, data-parallel scaling, the naive baseline and the pre-flight check."""
