"""`rewardlab teachers`: which reward model is the better teacher for *this* policy?

Razin et al. (2025), "What Makes a Reward Model a Good Teacher? An Optimization Perspective": accuracy alone does not
make a good teacher; a reward must also induce enough reward variance under the policy, or the RLHF objective is
flat and the policy learns slowly. Variance only helps a reward that points the right way where the policy puts its
mass — a misaligned reward with high variance is fast optimization in the wrong direction.

The stage composes earlier ones (evaluate's metrics, optimize's best-of-n and RLOO) into one verdict:

* :mod:`rewardlab.teachers.probes` — one shared sample of the policy, scored by every reward and the gold; the
  teacher metrics with bootstrap CIs; best-of-n on the shared sample; short RLOO probes from the same start;
* :mod:`rewardlab.teachers.verdict` — the ranking rule (direction first, then the realized or predicted speed),
  ties, flags and the agreement of each metric with the realized gold gain;
* :mod:`rewardlab.teachers.run` — the whole run, ``teachers.json`` and ``report.html``.
"""
