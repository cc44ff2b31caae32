"""Reward serving: ``rewardlab serve MODEL_DIR_OR_SPEC`` (FastAPI + uvicorn).

Public API (import from the submodules; this package stays import-light so ``rewardlab --help`` is fast):

- :func:`rewardlab.serve.app.create_app` (``reward, ServeConfig, name``) -> ASGI app; ``ServeConfig`` (limits);
  its scoring endpoints are :mod:`rewardlab.serve.routes`
- :func:`rewardlab.serve.server.serve_forever`, :class:`rewardlab.serve.server.ServerThread` (tests, notebooks)
- :class:`rewardlab.serve.batcher.DynamicBatcher`
- :mod:`rewardlab.serve.client`: ``RewardClient``, ``RemoteReward``, ``make_reward_func`` (TRL reward functions)
- :mod:`rewardlab.serve.protocols`: wire formats (OpenRLHF, vLLM, native) and the facts they were checked against
"""
