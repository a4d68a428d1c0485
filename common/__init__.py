"""What both tiers share: settings base, pod identity, logging, middleware, metrics."""
