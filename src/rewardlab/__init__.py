"""rewardlab: train, evaluate, optimize against and serve reward models — and measure whether they teach well."""

__version__ = "0.1.0"
