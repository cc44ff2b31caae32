"""rewardlab inside other people's trainers (stage after serve: imports serve, evaluate, rewards).

- :mod:`rewardlab.integrations.monitor`: :class:`TeacherMonitor` (a TRL ``TrainerCallback`` + reward-function
  wrapper) and :func:`group_metrics` (the same numbers for verl or any loop) -- Razin et al. 2025's reward variance,
  the fraction of near-flat prompt groups and the reward/length correlation, per step while training.
- :mod:`rewardlab.integrations.verl`: ``compute_score`` / ``compute_score_async`` for verl's
  ``custom_reward_function``, backed by any reward spec or server URL.
- TRL reward functions themselves come from :func:`rewardlab.serve.client.make_reward_func`.
"""
